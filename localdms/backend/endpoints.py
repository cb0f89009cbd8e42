"""Endpoints and their connection tests: CreateEndpoint, DescribeEndpoints, DeleteEndpoint,
TestConnection, DescribeConnections. A connection test really connects (to PostgreSQL with the
endpoint's SslMode, or to the S3 bucket) on a thread and shows ``testing`` for at least
``transition_seconds``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import asyncpg

from dms_spec.status import ConnectionStatus, InstanceStatus
from localdms.backend.base import BackendBase
from localdms.backend.queries import filtered, paginate, with_marker
from localdms.backend.resources import GONE, Connection, Endpoint
from localdms.endpoint_settings import (
    POSTGRES_ENGINES,
    S3_ENGINES,
    parse_extra_connection_attributes,
)
from localdms.engine.task_run import check_bucket, source_error
from localdms.exceptions import (
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
)
from localdms.identifiers import validate_identifier

log = logging.getLogger(__name__)


class EndpointBackend(BackendBase):
    """The endpoint and connection operations."""

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateEndpoint.

        Request members accepted and not acted on: ExternalTableDefinition, DynamoDbSettings,
        DmsTransferSettings, MongoDbSettings, KinesisSettings, KafkaSettings,
        ElasticsearchSettings, NeptuneSettings, RedshiftSettings, MySQLSettings,
        OracleSettings, SybaseSettings, MicrosoftSQLServerSettings, IBMDb2Settings,
        DocDbSettings, RedisSettings, GcpMySQLSettings, TimestreamSettings.
        """
        with self.lock:
            self._advance()
            identifier = validate_identifier("EndpointIdentifier", params.get("EndpointIdentifier"))
            endpoint_type = str(params.get("EndpointType", "")).upper()
            if endpoint_type not in ("SOURCE", "TARGET"):
                raise InvalidParameterValueException(
                    f"EndpointType {params.get('EndpointType')!r} is not valid; use source or target."
                )
            engine = str(params.get("EngineName", "")).lower()
            engines = POSTGRES_ENGINES if endpoint_type == "SOURCE" else S3_ENGINES
            if engine not in engines:
                raise InvalidParameterValueException(
                    f"localdms supports {endpoint_type.lower()} endpoints with EngineName "
                    f"{' or '.join(engines)}, not {params.get('EngineName')!r}."
                )
            if self._identifier_taken(self.endpoints, identifier):
                raise ResourceAlreadyExistsFault(f"Endpoint {identifier} already exists.")
            extra = parse_extra_connection_attributes(params.get("ExtraConnectionAttributes"))
            settings_key = "S3Settings" if engine == "s3" else "PostgreSQLSettings"
            settings = {**extra, **(params.get(settings_key) or {})}
            password = params.get("Password") or settings.pop("Password", None)
            fields = {
                key: params[key]
                for key in (
                    "Username",
                    "ServerName",
                    "Port",
                    "DatabaseName",
                    "ExtraConnectionAttributes",
                    "SslMode",
                    "CertificateArn",
                    "KmsKeyId",
                    "ServiceAccessRoleArn",
                )
                if params.get(key) not in (None, "")
            }
            endpoint = Endpoint(
                arn=self._arn("endpoint", params.get("ResourceIdentifier")),
                identifier=identifier,
                status="active",
                created=time.time(),
                endpoint_type=endpoint_type,
                engine_name=engine,
                fields=fields,
                settings=settings,
                password=password,
            )
            if engine == "s3":
                endpoint.target()  # validates the settings localdms acts on
            else:
                endpoint.source()
            self.endpoints[endpoint.arn] = endpoint
            self._set_tags(endpoint.arn, params.get("Tags") or [])
            self._save()
            return {"Endpoint": endpoint.to_api()}

    def describe_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeEndpoints.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            items = filtered(
                list(self.endpoints.values()),
                params.get("Filters"),
                {
                    "endpoint-arn": lambda e: [e.arn],
                    "endpoint-type": lambda e: [e.endpoint_type, e.endpoint_type.lower()],
                    "endpoint-id": lambda e: [e.identifier],
                    "engine-name": lambda e: [e.engine_name],
                },
                id_filters=("endpoint-id",),
                what="endpoints",
            )
            page, marker = paginate(items, params)
            return with_marker({"Endpoints": [e.to_api() for e in page]}, marker)

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteEndpoint.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            endpoint = self._endpoint(params.get("EndpointArn"))
            users = [
                t.identifier
                for t in self.tasks.values()
                if endpoint.arn in (t.source_arn, t.target_arn)
            ]
            if users:
                raise InvalidResourceStateFault(
                    f"Endpoint {endpoint.arn} is used by replication task(s) {', '.join(users)}. "
                    "All tasks associated with the endpoint must be deleted before you can delete "
                    "the endpoint."
                )
            endpoint.schedule("deleting", GONE, self.transition_seconds)
            for key in [k for k in self.connections if k[0] == endpoint.arn]:
                del self.connections[key]
            self._save()
            return {"Endpoint": endpoint.to_api()}

    def test_connection(self, params: dict[str, Any]) -> dict[str, Any]:
        """TestConnection.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            instance = self._instance(params.get("ReplicationInstanceArn"))
            endpoint = self._endpoint(params.get("EndpointArn"))
            if instance.status != InstanceStatus.AVAILABLE:
                raise InvalidResourceStateFault(
                    f"Replication instance {instance.arn} is {instance.status}, not available."
                )
            connection = Connection(
                arn=f"{endpoint.arn}|{instance.arn}",
                identifier=endpoint.identifier,
                status=ConnectionStatus.TESTING,
                created=time.time(),
                endpoint_arn=endpoint.arn,
                instance_arn=instance.arn,
                endpoint_identifier=endpoint.identifier,
                instance_identifier=instance.identifier,
            )
            self.connections[(endpoint.arn, instance.arn)] = connection
            self._save()
            threading.Thread(
                target=self._run_connection_test, args=(connection, endpoint), daemon=True
            ).start()
            return {"Connection": connection.to_api()}

    def _run_connection_test(self, connection: Connection, endpoint: Endpoint) -> None:
        started = time.time()
        try:
            problem = self._probe(endpoint)
        except Exception as exc:  # the thread's top frame: record, never die silently
            log.exception("connection test of %s failed", endpoint.arn)
            problem = f"localdms could not test the connection: {exc!r}"
        with self.lock:
            connection.last_failure_message = problem or ""
            result = ConnectionStatus.FAILED if problem else ConnectionStatus.SUCCESSFUL
            remaining = max(0.0, self.transition_seconds - (time.time() - started))
            connection.schedule(ConnectionStatus.TESTING, result, remaining)
            self._save()

    def _probe(self, endpoint: Endpoint) -> str | None:
        if endpoint.engine_name == "s3":
            return check_bucket(self.s3_factory(), endpoint.target().bucket_name)
        source = endpoint.source()

        async def connect() -> None:
            conn = await asyncpg.connect(**source.asyncpg_arguments(timeout=10))
            await conn.close()

        try:
            asyncio.run(connect())
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            return source_error(source, exc)
        return None

    def describe_connections(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeConnections.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            items = filtered(
                list(self.connections.values()),
                params.get("Filters"),
                {
                    "endpoint-arn": lambda c: [c.endpoint_arn],
                    "replication-instance-arn": lambda c: [c.instance_arn],
                },
                what="connections",
            )
            page, marker = paginate(items, params)
            return with_marker({"Connections": [c.to_api() for c in page]}, marker)
