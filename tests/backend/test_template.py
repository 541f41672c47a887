"""Checks of ``backend/template.yaml``: cfn-lint is clean, and the template has the structure the
backend and the console rely on (routes, authorizer, functions, Redis, IAM, logs, outputs).

cfn-lint runs once per module. The other tests read the template as data, with the loader the
console deploys it with (``desktop.services.deploy.load_template``: CloudFormation's short tags,
``!Ref``, ``!Sub``, ..., in their long forms), and a small evaluator resolves
``Fn::If``/conditions under chosen parameter values, so cluster mode and the replica layout are
checked the way CloudFormation would resolve them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from desktop.services.deploy import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "backend" / "template.yaml"

HANDLERS = {
    "AuthorizerFunction": "backend.handlers.authorizer.handler",
    "ConnectFunction": "backend.handlers.connect.handler",
    "DisconnectFunction": "backend.handlers.disconnect.handler",
    "MessagesFunction": "backend.handlers.messages.handler",
    "AdminFunction": "backend.handlers.admin.handler",
}
REDIS_FUNCTIONS = {"ConnectFunction", "DisconnectFunction", "MessagesFunction", "AdminFunction"}
POSTING_FUNCTIONS = REDIS_FUNCTIONS
API_INVOKED_FUNCTIONS = {
    "AuthorizerFunction",
    "ConnectFunction",
    "DisconnectFunction",
    "MessagesFunction",
}
ROUTES = {
    "$connect": "ConnectFunction",
    "$disconnect": "DisconnectFunction",
    "$default": "MessagesFunction",
    "send": "MessagesFunction",
    "sync": "MessagesFunction",
    "who": "MessagesFunction",
    "ping": "MessagesFunction",
}
ARCHITECTURE = TEMPLATE.parents[1] / "docs" / "architecture.md"
# Documented alternatives the template does not use: a Redis URL instead of host, port, TLS and
# token; the secret's value instead of its ARN.
UNUSED_ALTERNATIVES = {"REDIS_URL", "TOKEN_SECRET"}
CUSTOM_METRICS = {"FanoutSize", "Deliveries", "StaleConnectionsPruned", "PostFailures"}
REQUIRED_OUTPUTS = {
    "WebSocketUrl",
    "ManagementEndpoint",
    "AdminFunctionName",
    "DashboardName",
    "ApiId",
    "StageName",
    "TokenSecretArn",
    "RedisEndpoint",
    "RedisPort",
}
MANAGE_CONNECTIONS_ARN = re.compile(
    r"arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
    r"\$\{Api\}/\$\{StageName\}/(POST|DELETE)/@connections/\*"
)


# --------------------------------------------------------------------------- resolving


_NO_VALUE = object()


def evaluate_condition(template: dict, expression: Any, parameters: dict) -> bool:
    """The truth of a condition expression, given parameter values (defaults fill the rest)."""
    if isinstance(expression, dict) and "Condition" in expression:
        return evaluate_condition(
            template, template["Conditions"][expression["Condition"]], parameters
        )
    ((function, arguments),) = expression.items()
    if function == "Fn::Equals":
        left, right = (str(resolve(template, argument, parameters)) for argument in arguments)
        return left == right
    if function == "Fn::Not":
        return not evaluate_condition(template, arguments[0], parameters)
    if function == "Fn::Or":
        return any(evaluate_condition(template, argument, parameters) for argument in arguments)
    if function == "Fn::And":
        return all(evaluate_condition(template, argument, parameters) for argument in arguments)
    raise AssertionError(f"unexpected condition function {function}")


def resolve(template: dict, value: Any, parameters: dict | None = None) -> Any:
    """``value`` with ``Fn::If``, ``Fn::FindInMap``, ``AWS::NoValue`` and parameter ``Ref`` resolved.

    Resource references and other functions are left as they are.
    """
    parameters = parameters or {}
    if isinstance(value, list):
        items = [resolve(template, item, parameters) for item in value]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if value.keys() == {"Ref"}:
        name = value["Ref"]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in template.get("Parameters", {}):
            if name in parameters:
                return parameters[name]
            return template["Parameters"][name].get("Default")
        return value
    if value.keys() == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        truth = evaluate_condition(template, template["Conditions"][condition], parameters)
        return resolve(template, when_true if truth else when_false, parameters)
    if value.keys() == {"Fn::FindInMap"}:
        mapping, first, second = (
            resolve(template, key, parameters) for key in value["Fn::FindInMap"]
        )
        return template["Mappings"][mapping][str(first)][str(second)]
    resolved = {key: resolve(template, item, parameters) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not _NO_VALUE}


def references(value: Any) -> set[str]:
    """Logical ids and parameters that ``value`` names through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref":
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0])
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(item, str):
                    found |= references(item[1])
            else:
                found |= references(item)
    return {name for name in found if not name.startswith("AWS::")}


def statements(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template(TEMPLATE.read_text(encoding="utf-8"), str(TEMPLATE))


@pytest.fixture(scope="module")
def resources(template: dict) -> dict:
    return template["Resources"]


def of_type(resources: dict, type_name: str) -> dict[str, dict]:
    return {name: body for name, body in resources.items() if body["Type"] == type_name}


@pytest.fixture(scope="module")
def lint_findings() -> list[dict]:
    """cfn-lint's findings (JSON format) for the template, run once for the module."""
    beside_python = Path(sys.executable).with_name("cfn-lint")
    executable = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    if executable is None:
        pytest.fail("cfn-lint is not installed; install the dev extras (pip install -e '.[dev]')")
    result = subprocess.run(
        [executable, "--format", "json", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Exit codes are bit flags: 2 errors, 4 warnings, 8 informational; 1 means cfn-lint failed.
    if result.returncode & 1 or not result.stdout.strip():
        pytest.fail(f"cfn-lint did not run (exit {result.returncode}): {result.stderr.strip()}")
    return json.loads(result.stdout)


def role_statements(resources: dict, role_name: str) -> list[dict]:
    """Every permission statement of a role: inline policies and managed policies in the template."""
    role = resources[role_name]["Properties"]
    found = [
        statement
        for policy in role.get("Policies", [])
        for statement in statements(policy["PolicyDocument"])
    ]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and arn.keys() == {"Ref"} and arn["Ref"] in resources:
            found += statements(resources[arn["Ref"]]["Properties"]["PolicyDocument"])
    return found


def function_role(resources: dict, function_name: str) -> str:
    role = resources[function_name]["Properties"]["Role"]
    assert role.keys() == {"Fn::GetAtt"} and role["Fn::GetAtt"][1] == "Arn", role
    return role["Fn::GetAtt"][0]


def granting(resources: dict, function_name: str, action: str) -> list[dict]:
    return [
        statement
        for statement in role_statements(resources, function_role(resources, function_name))
        if action in as_list(statement["Action"])
    ]


# --------------------------------------------------------------------------- lint


def test_cfn_lint_reports_no_errors_or_warnings(lint_findings: list[dict]) -> None:
    serious = [
        f"{finding['Rule']['Id']} line {finding['Location']['Start']['LineNumber']}: "
        f"{finding['Message']}"
        for finding in lint_findings
        if finding["Level"] in ("Error", "Warning")
    ]
    assert serious == []


# --------------------------------------------------------------------------- WebSocket API


def test_api_is_websocket_routed_on_action(resources: dict) -> None:
    apis = of_type(resources, "AWS::ApiGatewayV2::Api")
    assert list(apis) == ["Api"]
    assert apis["Api"]["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert apis["Api"]["Properties"]["RouteSelectionExpression"] == "$request.body.action"


def test_every_route_targets_the_right_lambda_proxy_integration(resources: dict) -> None:
    routes = {
        body["Properties"]["RouteKey"]: body["Properties"]
        for body in of_type(resources, "AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == set(ROUTES)
    for route_key, function_name in ROUTES.items():
        route = routes[route_key]
        assert route["ApiId"] == {"Ref": "Api"}, route_key
        target = re.fullmatch(r"integrations/\$\{(\w+)\}", route["Target"]["Fn::Sub"])
        assert target, route_key
        integration = resources[target.group(1)]
        assert integration["Type"] == "AWS::ApiGatewayV2::Integration", route_key
        assert integration["Properties"]["IntegrationType"] == "AWS_PROXY", route_key
        uri = integration["Properties"]["IntegrationUri"]["Fn::Sub"]
        assert uri == (
            "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/"
            f"functions/${{{function_name}.Arn}}/invocations"
        ), route_key


def test_connect_route_has_the_request_authorizer_on_the_token(resources: dict) -> None:
    routes = {
        body["Properties"]["RouteKey"]: body["Properties"]
        for body in of_type(resources, "AWS::ApiGatewayV2::Route").values()
    }
    connect = routes["$connect"]
    assert connect["AuthorizationType"] == "CUSTOM"
    authorizer = resources[connect["AuthorizerId"]["Ref"]]
    assert authorizer["Type"] == "AWS::ApiGatewayV2::Authorizer"
    properties = authorizer["Properties"]
    assert properties["AuthorizerType"] == "REQUEST"
    assert properties["IdentitySource"] == ["route.request.querystring.token"]
    assert references(properties["AuthorizerUri"]) == {"AuthorizerFunction"}
    for route_key, route in routes.items():
        if route_key != "$connect":
            assert route["AuthorizationType"] == "NONE", route_key
            assert "AuthorizerId" not in route, route_key


def test_api_gateway_may_invoke_exactly_the_api_functions(resources: dict) -> None:
    invoked = {}
    for name, body in of_type(resources, "AWS::Lambda::Permission").items():
        properties = body["Properties"]
        assert properties["Action"] == "lambda:InvokeFunction", name
        assert properties["Principal"] == "apigateway.amazonaws.com", name
        source = properties["SourceArn"]["Fn::Sub"]
        assert source.startswith(
            "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/"
        ), name
        invoked[properties["FunctionName"]["Ref"]] = source
    assert set(invoked) == API_INVOKED_FUNCTIONS
    assert invoked["AuthorizerFunction"].endswith("/authorizers/${ConnectAuthorizer}")
    assert invoked["ConnectFunction"].endswith("/${StageName}/$connect")
    assert invoked["DisconnectFunction"].endswith("/${StageName}/$disconnect")


def test_stage_logs_throttles_and_deploys_after_the_routes(template: dict, resources: dict) -> None:
    stage = resources["Stage"]
    properties = stage["Properties"]
    assert properties["StageName"] == {"Ref": "StageName"}
    assert template["Parameters"]["StageName"]["Default"] == "prod"
    assert properties["AutoDeploy"] is True
    routes = set(of_type(resources, "AWS::ApiGatewayV2::Route"))
    assert routes <= set(stage["DependsOn"])
    assert "ApiGatewayAccount" in stage["DependsOn"]

    settings = properties["DefaultRouteSettings"]
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["LoggingLevel"] == {"Ref": "ExecutionLogLevel"}
    assert {"INFO", "ERROR"} <= set(template["Parameters"]["ExecutionLogLevel"]["AllowedValues"])

    access = properties["AccessLogSettings"]
    log_group = access["DestinationArn"]["Fn::GetAtt"]
    assert resources[log_group[0]]["Type"] == "AWS::Logs::LogGroup" and log_group[1] == "Arn"
    fields = json.loads(access["Format"])
    for field, variable in [
        ("requestId", "requestId"),
        ("connectionId", "connectionId"),
        ("routeKey", "routeKey"),
        ("status", "status"),
        ("eventType", "eventType"),
        ("integrationError", "integration.error"),
    ]:
        assert fields.get(field) == f"$context.{variable}", field


def test_api_gateway_account_has_a_cloudwatch_role(resources: dict) -> None:
    account = resources["ApiGatewayAccount"]
    assert account["Type"] == "AWS::ApiGateway::Account"
    role = resources[account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]]
    trust = statements(role["Properties"]["AssumeRolePolicyDocument"])
    assert trust[0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert role["DeletionPolicy"] == "Retain"


# --------------------------------------------------------------------------- functions


def test_functions_run_python312_on_arm64_from_the_artifact(resources: dict) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    assert set(functions) == set(HANDLERS)
    for name, body in functions.items():
        properties = body["Properties"]
        assert properties["Runtime"] == "python3.12", name
        assert properties["Architectures"] == ["arm64"], name
        assert properties["Handler"] == HANDLERS[name], name
        assert properties["Code"] == {
            "S3Bucket": {"Ref": "ArtifactBucket"},
            "S3Key": {"Ref": "ArtifactKey"},
        }, name


def test_every_function_has_its_own_log_group_with_retention(
    template: dict, resources: dict
) -> None:
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30
    for name in HANDLERS:
        properties = resources[name]["Properties"]
        log_group = resources[properties["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Type"] == "AWS::Logs::LogGroup", name
        assert log_group["Properties"]["LogGroupName"] == {
            "Fn::Sub": "/aws/lambda/" + properties["FunctionName"]["Fn::Sub"]
        }, name
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def documented_environment() -> set[str]:
    """The variables docs/architecture.md lists under "Environment (all handlers)"."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    paragraph = text.split("Environment (all handlers):", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", paragraph))


def test_redis_functions_get_exactly_the_documented_environment(resources: dict) -> None:
    documented = documented_environment()
    assert {"REDIS_HOST", "TOKEN_SECRET_ARN", "MANAGEMENT_ENDPOINT_URL"} <= documented
    for name in REDIS_FUNCTIONS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        expected = documented - UNUSED_ALTERNATIVES
        if name != "AdminFunction":  # the others take the endpoint from their event
            expected -= {"MANAGEMENT_ENDPOINT_URL"}
        assert set(variables) == expected, name
        assert variables["REDIS_TLS"] == "true", name
        assert variables["REDIS_AUTH_SECRET_ARN"] == {"Ref": "RedisAuthSecret"}, name
        assert variables["REDIS_CLUSTER"] == {"Fn::If": ["IsClusterMode", "true", "false"]}, name
        assert variables["TOKEN_SECRET_ARN"] == {"Ref": "TokenSecret"}, name
        assert references(variables["REDIS_HOST"]) == {"ReplicationGroup"}, name
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}, name


def test_admin_function_knows_the_management_endpoint(template: dict, resources: dict) -> None:
    variables = resources["AdminFunction"]["Properties"]["Environment"]["Variables"]
    endpoint = variables["MANAGEMENT_ENDPOINT_URL"]["Fn::Sub"]
    assert (
        endpoint.replace("${StageName}", "${Stage}")
        == (template["Outputs"]["ManagementEndpoint"]["Value"]["Fn::Sub"])
    )


def test_authorizer_reads_only_the_token_secret_outside_the_vpc(resources: dict) -> None:
    properties = resources["AuthorizerFunction"]["Properties"]
    variables = properties["Environment"]["Variables"]
    assert variables["TOKEN_SECRET_ARN"] == {"Ref": "TokenSecret"}
    assert not [key for key in variables if key.startswith("REDIS_")]
    assert set(variables) <= documented_environment()
    assert "VpcConfig" not in properties


def test_redis_functions_run_in_the_private_subnets(resources: dict) -> None:
    for name in REDIS_FUNCTIONS:
        vpc = resources[name]["Properties"]["VpcConfig"]
        assert vpc["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}], name
        assert vpc["SecurityGroupIds"] == [{"Ref": "FunctionSecurityGroup"}], name


# --------------------------------------------------------------------------- network


def _default_route_target(resources: dict, subnet: str) -> tuple[str, str]:
    """(property, logical id) of the 0.0.0.0/0 route of the subnet's route table."""
    (table,) = [
        body["Properties"]["RouteTableId"]["Ref"]
        for body in of_type(resources, "AWS::EC2::SubnetRouteTableAssociation").values()
        if body["Properties"]["SubnetId"] == {"Ref": subnet}
    ]
    (route,) = [
        body["Properties"]
        for body in of_type(resources, "AWS::EC2::Route").values()
        if body["Properties"]["RouteTableId"] == {"Ref": table}
        and body["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
    ]
    (key,) = [key for key in ("GatewayId", "NatGatewayId") if key in route]
    return key, route[key]


def test_two_azs_with_public_and_private_subnets_behind_nat(resources: dict) -> None:
    for subnet, index in [
        ("PublicSubnetA", 0),
        ("PublicSubnetB", 1),
        ("PrivateSubnetA", 0),
        ("PrivateSubnetB", 1),
    ]:
        zone = resources[subnet]["Properties"]["AvailabilityZone"]
        assert zone == {"Fn::Select": [index, {"Fn::GetAZs": ""}]}, subnet
    for subnet in ("PublicSubnetA", "PublicSubnetB"):
        key, target = _default_route_target(resources, subnet)
        assert (
            key == "GatewayId" and resources[target["Ref"]]["Type"] == "AWS::EC2::InternetGateway"
        )
    nats = of_type(resources, "AWS::EC2::NatGateway")
    for body in nats.values():
        assert body["Properties"]["SubnetId"]["Ref"].startswith("PublicSubnet")
    for subnet in ("PrivateSubnetA", "PrivateSubnetB"):
        key, target = _default_route_target(resources, subnet)
        assert key == "NatGatewayId", subnet
        assert references(target) <= set(nats) and references(target), subnet


# --------------------------------------------------------------------------- Redis


def test_replication_group_is_multi_az_encrypted_and_authenticated(resources: dict) -> None:
    group = resources["ReplicationGroup"]["Properties"]
    assert group["Engine"] == "redis"
    assert group["AutomaticFailoverEnabled"] is True
    assert group["MultiAZEnabled"] is True
    assert group["TransitEncryptionEnabled"] is True
    assert group["AtRestEncryptionEnabled"] is True
    assert group["AuthToken"] == {"Fn::Sub": "{{resolve:secretsmanager:${RedisAuthSecret}}}"}
    generated = resources["RedisAuthSecret"]["Properties"]["GenerateSecretString"]
    assert generated["ExcludePunctuation"] is True
    assert 32 <= generated["PasswordLength"] <= 64
    subnets = resources[group["CacheSubnetGroupName"]["Ref"]]["Properties"]["SubnetIds"]
    assert subnets == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 5])
def test_cluster_mode_disabled_places_primary_and_replica_in_different_azs(
    template: dict, resources: dict, replicas: int
) -> None:
    parameters = {"ReplicasPerShard": replicas, "NumShards": 1, "ClusterMode": "disabled"}
    group = resolve(template, resources["ReplicationGroup"]["Properties"], parameters)
    assert group["NumCacheClusters"] == 1 + replicas
    assert group["CacheParameterGroupName"] == "default.redis7"
    assert "NumNodeGroups" not in group and "ReplicasPerNodeGroup" not in group
    zones = [zone["Fn::GetAtt"][0] for zone in group["PreferredCacheClusterAZs"]]
    assert len(zones) == 1 + replicas
    assert zones[:2] == ["PrivateSubnetA", "PrivateSubnetB"]
    assert group["AutomaticFailoverEnabled"] is True and group["MultiAZEnabled"] is True


@pytest.mark.parametrize(
    "parameters",
    [
        {"NumShards": 3, "ClusterMode": "disabled", "ReplicasPerShard": 2},
        {"NumShards": 1, "ClusterMode": "enabled", "ReplicasPerShard": 1},
    ],
)
def test_cluster_mode_uses_node_groups_and_the_cluster_parameter_group(
    template: dict, resources: dict, parameters: dict
) -> None:
    group = resolve(template, resources["ReplicationGroup"]["Properties"], parameters)
    assert group["NumNodeGroups"] == parameters["NumShards"]
    assert group["ReplicasPerNodeGroup"] == parameters["ReplicasPerShard"]
    assert group["CacheParameterGroupName"] == "default.redis7.cluster.on"
    assert "NumCacheClusters" not in group and "PreferredCacheClusterAZs" not in group
    variables = resolve(
        template, resources["MessagesFunction"]["Properties"]["Environment"], parameters
    )["Variables"]
    assert variables["REDIS_CLUSTER"] == "true"
    assert variables["REDIS_HOST"] == {
        "Fn::GetAtt": ["ReplicationGroup", "ConfigurationEndPoint.Address"]
    }


def test_cluster_mode_off_by_default(template: dict, resources: dict) -> None:
    variables = resolve(template, resources["MessagesFunction"]["Properties"]["Environment"])
    assert variables["Variables"]["REDIS_CLUSTER"] == "false"
    assert variables["Variables"]["REDIS_HOST"] == {
        "Fn::GetAtt": ["ReplicationGroup", "PrimaryEndPoint.Address"]
    }
    parameters = template["Parameters"]
    assert parameters["CacheNodeType"]["Default"] == "cache.t4g.small"
    assert parameters["ReplicasPerShard"]["Default"] == 1
    assert parameters["ReplicasPerShard"]["MinValue"] == 1
    assert parameters["NumShards"]["Default"] == 1


def test_redis_admits_6379_only_from_the_functions(resources: dict) -> None:
    group = resources["ReplicationGroup"]["Properties"]
    assert group["SecurityGroupIds"] == [{"Ref": "CacheSecurityGroup"}]
    assert "SecurityGroupIngress" not in resources["CacheSecurityGroup"]["Properties"]
    rules = [
        body["Properties"]
        for body in of_type(resources, "AWS::EC2::SecurityGroupIngress").values()
        if body["Properties"]["GroupId"] == {"Ref": "CacheSecurityGroup"}
    ]
    assert rules, "no ingress rule for the cache"
    for rule in rules:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 6379, 6379)
        assert rule["SourceSecurityGroupId"] == {"Ref": "FunctionSecurityGroup"}
        assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(rule)


def test_token_secret_is_generated(resources: dict) -> None:
    secret = resources["TokenSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] == 64


# --------------------------------------------------------------------------- IAM


def _all_policy_statements(resources: dict) -> list[tuple[str, dict]]:
    found = []
    for name, body in resources.items():
        properties = body.get("Properties", {})
        if body["Type"] == "AWS::IAM::Role":
            found += [(name, s) for s in statements(properties["AssumeRolePolicyDocument"])]
            for policy in properties.get("Policies", []):
                found += [(name, s) for s in statements(policy["PolicyDocument"])]
        elif body["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            found += [(name, s) for s in statements(properties["PolicyDocument"])]
    return found


def test_no_iam_statement_has_a_wildcard_action(resources: dict) -> None:
    found = _all_policy_statements(resources)
    assert len(found) > 10
    for name, statement in found:
        assert "NotAction" not in statement, name
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{name}: {action}"


def test_only_unscopable_describe_calls_use_every_resource(resources: dict) -> None:
    for name, statement in _all_policy_statements(resources):
        if "*" in as_list(statement.get("Resource", [])):
            assert all(
                action.startswith("ec2:Describe") for action in as_list(statement["Action"])
            ), name


def test_manage_connections_only_for_posting_functions(resources: dict) -> None:
    posting = {
        name for name in HANDLERS if granting(resources, name, "execute-api:ManageConnections")
    }
    assert posting == POSTING_FUNCTIONS
    for name in posting:
        methods = set()
        for statement in granting(resources, name, "execute-api:ManageConnections"):
            for resource in as_list(statement["Resource"]):
                match = MANAGE_CONNECTIONS_ARN.fullmatch(resource["Fn::Sub"])
                assert match, f"{name}: {resource}"
                methods.add(match.group(1))
        assert methods == ({"POST", "DELETE"} if name == "AdminFunction" else {"POST"}), name


SECRET_READERS = {
    "TokenSecret": {"AuthorizerFunction", "AdminFunction"},
    "RedisAuthSecret": REDIS_FUNCTIONS,
}


def test_secret_reads_are_each_one_secret_for_the_functions_that_read_it(resources: dict) -> None:
    readers: dict[str, set[str]] = {secret: set() for secret in SECRET_READERS}
    for name in HANDLERS:
        for statement in granting(resources, name, "secretsmanager:GetSecretValue"):
            assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"], name
            (secret,) = references(statement["Resource"])
            assert statement["Resource"] == {"Ref": secret}, name  # the secret itself, no pattern
            readers[secret].add(name)
    assert readers == SECRET_READERS
    for name, statement in _all_policy_statements(resources):
        if any(action.startswith("secretsmanager:") for action in as_list(statement["Action"])):
            assert references(statement["Resource"]) <= set(SECRET_READERS), name


def test_no_function_has_a_secret_value_in_its_environment(resources: dict) -> None:
    for name in HANDLERS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert "{{resolve:" not in json.dumps(variables), name
        # A function that reads the Redis AUTH token is told which secret it is, and may read it.
        told = variables.get("REDIS_AUTH_SECRET_ARN") == {"Ref": "RedisAuthSecret"}
        assert told == (name in SECRET_READERS["RedisAuthSecret"]), name


def test_functions_write_only_their_own_log_group(resources: dict) -> None:
    for name in HANDLERS:
        log_group = resources[name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        role = function_role(resources, name)
        assert sum(role == function_role(resources, other) for other in HANDLERS) == 1, name
        log_statements = [
            s
            for s in role_statements(resources, role)
            if any(a.startswith("logs:") for a in as_list(s["Action"]))
        ]
        assert log_statements, name
        for statement in log_statements:
            assert statement["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}, name


def test_vpc_functions_can_attach_to_the_vpc(resources: dict) -> None:
    for name in REDIS_FUNCTIONS:
        actions = {
            action
            for statement in role_statements(resources, function_role(resources, name))
            for action in as_list(statement["Action"])
        }
        assert {
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DeleteNetworkInterface",
        } <= actions, name


# --------------------------------------------------------------------------- observability


def test_dashboard_is_valid_json_covering_api_functions_cache_and_custom_metrics(
    resources: dict,
) -> None:
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    substituted = re.sub(r"\$\{([^}]+)\}", lambda m: f"<{m.group(1)}>", body)
    dashboard = json.loads(substituted)
    named: set[str] = set()
    functions: set[str] = set()
    for widget in dashboard["widgets"]:
        for metric in widget["properties"]["metrics"]:
            if isinstance(metric[0], dict):
                expression = metric[0]["expression"]
                found = set(re.findall(r'MetricName="(\w+)"', expression))
                if found & CUSTOM_METRICS:
                    # backend/observability.py emits them with the service and Handler dimensions
                    assert '{"<MetricsNamespace>",Handler,service}' in expression, expression
                    assert 'service="<ServiceName>"' in expression, expression
                named |= found
            else:
                named.add(metric[1])
                if metric[0] == "AWS/Lambda":
                    functions.add(metric[3])
    assert {
        "ConnectCount",
        "MessageCount",
        "IntegrationError",
        "IntegrationLatency",
        "Invocations",
        "Errors",
        "Throttles",
        "Duration",
        "EngineCPUUtilization",
        "DatabaseMemoryUsagePercentage",
        "ReplicationLag",
        "CurrConnections",
    } | CUSTOM_METRICS <= named
    assert functions == {f"<{name}>" for name in HANDLERS}


def test_alarms_cover_api_functions_and_cache(resources: dict) -> None:
    alarms = [body["Properties"] for body in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    watched = {
        (alarm["Namespace"], alarm["MetricName"], frozenset(references(alarm["Dimensions"])))
        for alarm in alarms
    }
    assert ("AWS/ApiGateway", "IntegrationError", frozenset({"Api", "StageName"})) in watched
    for name in HANDLERS:
        for metric in ("Errors", "Throttles"):
            assert ("AWS/Lambda", metric, frozenset({name})) in watched, (name, metric)
    for metric in ("EngineCPUUtilization", "DatabaseMemoryUsagePercentage", "ReplicationLag"):
        assert ("AWS/ElastiCache", metric, frozenset({"ReplicationGroup"})) in watched, metric
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], alarm["AlarmName"]


# --------------------------------------------------------------------------- outputs


def test_required_outputs_exist(template: dict) -> None:
    outputs = template["Outputs"]
    assert set(outputs) >= REQUIRED_OUTPUTS
    assert outputs["WebSocketUrl"]["Value"] == {
        "Fn::Sub": "wss://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
    }
    assert outputs["ManagementEndpoint"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
    }
    assert outputs["ApiId"]["Value"] == {"Ref": "Api"}
    assert outputs["StageName"]["Value"] == {"Ref": "Stage"}
    assert outputs["AdminFunctionName"]["Value"] == {"Ref": "AdminFunction"}
    assert outputs["DashboardName"]["Value"] == {"Ref": "Dashboard"}
    assert outputs["TokenSecretArn"]["Value"] == {"Ref": "TokenSecret"}
    assert outputs["RedisEndpoint"]["Value"] == {
        "Fn::If": [
            "IsClusterMode",
            {"Fn::GetAtt": ["ReplicationGroup", "ConfigurationEndPoint.Address"]},
            {"Fn::GetAtt": ["ReplicationGroup", "PrimaryEndPoint.Address"]},
        ]
    }
