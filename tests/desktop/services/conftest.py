"""Fixtures of the console's services tests."""

from __future__ import annotations

import pytest

from desktop.services import admin
from desktop.services.aws import AwsTarget
from tests.desktop.services.lambda_endpoint import LambdaEndpoint

FUNCTION = "classroom-prod-admin"


@pytest.fixture
def lambda_endpoint(aws_environment):
    endpoints: list[LambdaEndpoint] = []

    def start(answer) -> tuple[LambdaEndpoint, admin.AdminClient]:
        endpoint = LambdaEndpoint(answer)
        endpoints.append(endpoint)
        target = AwsTarget(region="eu-west-1", endpoint_url=endpoint.url)
        return endpoint, admin.AdminClient(admin.LambdaTransport(FUNCTION, target))

    yield start
    for endpoint in endpoints:
        endpoint.close()
