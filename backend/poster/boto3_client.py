"""The reference poster: ``boto3``'s ``apigatewaymanagementapi`` client, its errors made ours.

``MANAGEMENT_POSTER=boto3`` selects it; the lean poster must behave exactly as it does (the
tests run both against the same servers).
"""

from __future__ import annotations

from backend.poster.errors import ConnectionFailed, Gone, PostFailed, Throttled, Timeout


def _boto_config(concurrency: int):
    from botocore.config import Config

    # Retries are the fan-out's job, so both posters report the first answer as it is.
    return Config(
        max_pool_connections=concurrency,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=3,
        read_timeout=5,
    )


def _failure(error: Exception) -> PostFailed:
    """botocore's transport error as the same typed failure the lean poster raises."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
        return Timeout(str(error))
    if isinstance(error, EndpointConnectionError | ConnectionClosedError):
        return ConnectionFailed(str(error))
    return PostFailed(str(error))


class Boto3Poster:
    def __init__(
        self, endpoint_url: str, region: str, concurrency: int = 128, client=None, credentials=None
    ) -> None:
        if client is None:
            import boto3

            keys = {}
            if credentials is not None:
                keys = {
                    "aws_access_key_id": credentials.access_key,
                    "aws_secret_access_key": credentials.secret_key,
                    "aws_session_token": credentials.token,
                }
            client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint_url,
                region_name=region,
                config=_boto_config(concurrency),
                **keys,
            )
        self.client = client

    def _call(self, method, connection_id: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(ConnectionId=connection_id, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                raise Gone(connection_id) from None
            if status == 429 or code in ("LimitExceededException", "TooManyRequestsException"):
                raise Throttled(connection_id) from None
            raise PostFailed(f"{code or status}: {error}") from None
        except BotoCoreError as error:
            raise _failure(error) from None

    def post(self, connection_id: str, data: bytes) -> None:
        self._call(self.client.post_to_connection, connection_id, Data=data)

    def delete(self, connection_id: str) -> None:
        self._call(self.client.delete_connection, connection_id)

    def get(self, connection_id: str) -> dict:
        answer = self._call(self.client.get_connection, connection_id)
        answer.pop("ResponseMetadata", None)
        return answer
