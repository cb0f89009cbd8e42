"""Endpoints and their connection tests: CreateEndpoint, DescribeEndpoints, DeleteEndpoint,
TestConnection, DescribeConnections. A connection test really connects (to PostgreSQL with the
endpoint's SslMode, or to the S3 bucket) on a thread and shows ``testing`` for at least
``transition_seconds``."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from typing import Any

import asyncpg

from dms_spec.lifecycle import ACTIVE
from dms_spec.status import ConnectionStatus, InstanceStatus
from localdms.backend.base import BackendBase, ignores
from localdms.backend.queries import filtered, page_body
from localdms.backend.resources import GONE, Connection, Endpoint
from localdms.backend.shapes import Filter, Tag
from localdms.endpoint_settings import (
    POSTGRES_ENGINES,
    S3_ENGINES,
    parse_extra_connection_attributes,
)
from localdms.engine.failures import check_bucket, source_error
from localdms.exceptions import (
    DmsFault,
    InvalidParameterValueException,
    InvalidResourceStateFault,
)
from localdms.identifiers import validate_identifier

log = logging.getLogger(__name__)


class EndpointBackend(BackendBase):
    """The endpoint and connection operations."""

    @ignores(
        "ExternalTableDefinition", "DynamoDbSettings", "DmsTransferSettings", "MongoDbSettings",
        "KinesisSettings", "KafkaSettings", "ElasticsearchSettings", "NeptuneSettings",
        "RedshiftSettings", "MySQLSettings", "OracleSettings", "SybaseSettings",
        "MicrosoftSQLServerSettings", "IBMDb2Settings", "DocDbSettings", "RedisSettings",
        "GcpMySQLSettings", "TimestreamSettings",
    )  # fmt: skip
    def create_endpoint(
        self,
        *,
        endpoint_identifier: str,
        endpoint_type: str,
        engine_name: str,
        username: str | None = None,
        password: str | None = None,
        server_name: str | None = None,
        port: int | None = None,
        database_name: str | None = None,
        extra_connection_attributes: str | None = None,
        kms_key_id: str | None = None,
        tags: list[Tag] | None = None,
        certificate_arn: str | None = None,
        ssl_mode: str | None = None,
        service_access_role_arn: str | None = None,
        s3_settings: dict[str, Any] | None = None,
        postgre_sql_settings: dict[str, Any] | None = None,
        resource_identifier: str | None = None,
    ) -> dict[str, Any]:
        """CreateEndpoint.

        Ignores the settings of engines other than PostgreSQL and S3: ExternalTableDefinition,
        DynamoDbSettings, DmsTransferSettings, MongoDbSettings, KinesisSettings, KafkaSettings,
        ElasticsearchSettings, NeptuneSettings, RedshiftSettings, MySQLSettings,
        OracleSettings, SybaseSettings, MicrosoftSQLServerSettings, IBMDb2Settings,
        DocDbSettings, RedisSettings, GcpMySQLSettings, TimestreamSettings.
        """
        with self.lock:
            self._advance()
            identifier = validate_identifier("EndpointIdentifier", endpoint_identifier)
            kind = endpoint_type.upper()
            if kind not in ("SOURCE", "TARGET"):
                raise InvalidParameterValueException(
                    f"EndpointType {endpoint_type!r} is not valid; use source or target."
                )
            engine = engine_name.lower()
            engines = POSTGRES_ENGINES if kind == "SOURCE" else S3_ENGINES
            if engine not in engines:
                raise InvalidParameterValueException(
                    f"localdms supports {kind.lower()} endpoints with EngineName "
                    f"{' or '.join(engines)}, not {engine_name!r}."
                )
            self._claim_identifier(self.endpoints, identifier, "Endpoint")
            settings, nested = _requested_settings(
                engine, extra_connection_attributes, s3_settings, postgre_sql_settings
            )
            fields = _connection_fields(
                username, server_name, port, database_name, extra_connection_attributes,
                ssl_mode, certificate_arn, service_access_role_arn,
                kms_key_id or self._default_kms_key(),
            )  # fmt: skip
            if "CertificateArn" in fields:
                self._certificate(fields["CertificateArn"])
            endpoint = Endpoint(
                arn=self._arn("endpoint", resource_identifier),
                identifier=identifier,
                status="active",
                created=time.time(),
                endpoint_type=kind,
                engine_name=engine,
                fields=fields,
                settings=settings,
                password=password or nested,
            )
            endpoint.check()
            self.endpoints[endpoint.arn] = endpoint
            self._set_tags(endpoint.arn, tags)
            self._save()
            return {"Endpoint": endpoint.to_api()}

    @ignores(
        "ExternalTableDefinition", "DynamoDbSettings", "DmsTransferSettings", "MongoDbSettings",
        "KinesisSettings", "KafkaSettings", "ElasticsearchSettings", "NeptuneSettings",
        "RedshiftSettings", "MySQLSettings", "OracleSettings", "SybaseSettings",
        "MicrosoftSQLServerSettings", "IBMDb2Settings", "DocDbSettings", "RedisSettings",
        "GcpMySQLSettings", "TimestreamSettings",
    )  # fmt: skip
    def modify_endpoint(
        self,
        *,
        endpoint_arn: str,
        endpoint_identifier: str | None = None,
        endpoint_type: str | None = None,
        engine_name: str | None = None,
        username: str | None = None,
        password: str | None = None,
        server_name: str | None = None,
        port: int | None = None,
        database_name: str | None = None,
        extra_connection_attributes: str | None = None,
        certificate_arn: str | None = None,
        ssl_mode: str | None = None,
        service_access_role_arn: str | None = None,
        s3_settings: dict[str, Any] | None = None,
        postgre_sql_settings: dict[str, Any] | None = None,
        exact_settings: bool = False,
    ) -> dict[str, Any]:
        """ModifyEndpoint.

        The members given replace the endpoint's; settings merge into the existing ones, or
        replace them with ExactSettings. Refused while a running task uses the endpoint, and for
        another endpoint type or engine family (localdms has PostgreSQL sources and S3 targets).
        The changed endpoint is checked as CreateEndpoint checks it, and left unchanged when it
        fails. Ignores the settings of other engines, as CreateEndpoint does:
        ExternalTableDefinition, DynamoDbSettings, DmsTransferSettings, MongoDbSettings,
        KinesisSettings, KafkaSettings, ElasticsearchSettings, NeptuneSettings,
        RedshiftSettings, MySQLSettings, OracleSettings, SybaseSettings,
        MicrosoftSQLServerSettings, IBMDb2Settings, DocDbSettings, RedisSettings,
        GcpMySQLSettings, TimestreamSettings.
        """
        with self.lock:
            self._advance()
            endpoint = self._endpoint(endpoint_arn)
            running = [t.identifier for t in self.tasks.values()
                       if endpoint.arn in (t.source_arn, t.target_arn) and t.status in ACTIVE]  # fmt: skip
            if running:
                raise InvalidResourceStateFault(
                    f"Endpoint {endpoint.arn} is in use by running replication task(s) "
                    f"{', '.join(running)}: stop them before modifying it."
                )
            if endpoint_type is not None and endpoint_type.upper() != endpoint.endpoint_type:
                raise InvalidParameterValueException(
                    f"Endpoint {endpoint.identifier} is a {endpoint.endpoint_type.lower()} "
                    "endpoint; localdms cannot change its type (create another endpoint)."
                )
            engines = S3_ENGINES if endpoint.engine_name == "s3" else POSTGRES_ENGINES
            if engine_name is not None and engine_name.lower() not in engines:
                raise InvalidParameterValueException(
                    f"The engine of endpoint {endpoint.identifier} cannot change from "
                    f"{endpoint.engine_name} to {engine_name!r}."
                )
            if endpoint_identifier is not None:
                self._claim_identifier(
                    self.endpoints,
                    validate_identifier("EndpointIdentifier", endpoint_identifier),
                    "Endpoint",
                    current=endpoint,
                )
            given, nested = _requested_settings(
                endpoint.engine_name, extra_connection_attributes, s3_settings, postgre_sql_settings
            )
            changed = copy.deepcopy(endpoint)
            changed.settings = given if exact_settings else {**changed.settings, **given}
            changed.fields.update(_connection_fields(
                username, server_name, port, database_name, extra_connection_attributes,
                ssl_mode, certificate_arn, service_access_role_arn,
            ))  # fmt: skip
            if password or nested:
                changed.password = password or nested
            if engine_name is not None:
                changed.engine_name = engine_name.lower()
            if endpoint_identifier is not None:
                changed.identifier = endpoint_identifier
            changed.check()  # the same checks as CreateEndpoint, before anything changes
            if certificate_arn:
                self._certificate(certificate_arn)
            self.endpoints[endpoint.arn] = changed
            self._save()
            return {"Endpoint": changed.to_api()}

    def describe_endpoints(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeEndpoints (every request member is acted on)."""
        with self.lock:
            self._advance()
            items = filtered(
                list(self.endpoints.values()),
                filters,
                {
                    "endpoint-arn": lambda e: [e.arn],
                    "endpoint-type": lambda e: [e.endpoint_type, e.endpoint_type.lower()],
                    "endpoint-id": lambda e: [e.identifier],
                    "engine-name": lambda e: [e.engine_name],
                },
                id_filters=("endpoint-id",),
                what="endpoints",
            )
            return page_body("Endpoints", items, Endpoint.to_api, max_records, marker)

    def delete_endpoint(self, *, endpoint_arn: str) -> dict[str, Any]:
        """DeleteEndpoint (every request member is acted on)."""
        with self.lock:
            self._advance()
            endpoint = self._endpoint(endpoint_arn)
            users = [
                t.identifier
                for t in self.tasks.values()
                if endpoint.arn in (t.source_arn, t.target_arn)
            ] + [
                c.identifier
                for c in self.replication_configs.values()
                if endpoint.arn in (c.source_arn, c.target_arn)
            ]
            if users:
                raise InvalidResourceStateFault(
                    f"Endpoint {endpoint.arn} is used by replication task(s) or config(s) "
                    f"{', '.join(users)}. "
                    "All tasks associated with the endpoint must be deleted before you can delete "
                    "the endpoint."
                )
            endpoint.schedule("deleting", GONE, self.transition_seconds)
            for key in [k for k in self.connections if k[0] == endpoint.arn]:
                del self.connections[key]
            self._save()
            return {"Endpoint": endpoint.to_api()}

    def test_connection(
        self, *, replication_instance_arn: str, endpoint_arn: str
    ) -> dict[str, Any]:
        """TestConnection (every request member is acted on)."""
        with self.lock:
            self._advance()
            instance = self._instance(replication_instance_arn)
            endpoint = self._endpoint(endpoint_arn)
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
            remaining = max(0.0, self.transition_seconds - (time.time() - started))
            connection.tested(problem, remaining)
            self._save()

    def _probe(self, endpoint: Endpoint) -> str | None:
        if endpoint.engine_name == "s3":
            return check_bucket(self.s3_factory(), endpoint.target().bucket_name)
        try:
            source = self._source(endpoint)
        except DmsFault as fault:  # its secret cannot be read
            return fault.message

        async def connect() -> None:
            conn = await asyncpg.connect(**source.asyncpg_arguments())
            await conn.close()

        try:
            asyncio.run(connect())
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            return source_error(source, exc)
        return None

    def describe_connections(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeConnections (every request member is acted on)."""
        with self.lock:
            self._advance()
            items = filtered(
                list(self.connections.values()),
                filters,
                {
                    "endpoint-arn": lambda c: [c.endpoint_arn],
                    "replication-instance-arn": lambda c: [c.instance_arn],
                },
                what="connections",
            )
            return page_body("Connections", items, Connection.to_api, max_records, marker)


def _requested_settings(
    engine: str,
    extra_connection_attributes: str | None,
    s3_settings: dict[str, Any] | None,
    postgre_sql_settings: dict[str, Any] | None,
) -> tuple[dict[str, Any], str | None]:
    """The settings a request gives (its ExtraConnectionAttributes under its engine's settings
    object) and a password found among them. Terraform sends the password at the top level and
    inside PostgreSQLSettings: it is kept apart either way, so that no Describe returns it."""
    requested = s3_settings if engine == "s3" else postgre_sql_settings
    settings = {
        **parse_extra_connection_attributes(extra_connection_attributes),
        **(requested or {}),
    }
    return settings, settings.pop("Password", None)


def _connection_fields(
    username: str | None,
    server_name: str | None,
    port: int | None,
    database_name: str | None,
    extra_connection_attributes: str | None,
    ssl_mode: str | None,
    certificate_arn: str | None,
    service_access_role_arn: str | None,
    kms_key_id: str | None = None,
) -> dict[str, Any]:
    """The endpoint members a request gives (the empty ones left out), by API name."""
    members = {
        "Username": username,
        "ServerName": server_name,
        "Port": port,
        "DatabaseName": database_name,
        "ExtraConnectionAttributes": extra_connection_attributes,
        "SslMode": ssl_mode,
        "CertificateArn": certificate_arn,
        "KmsKeyId": kms_key_id,
        "ServiceAccessRoleArn": service_access_role_arn,
    }
    return {name: value for name, value in members.items() if value not in (None, "")}
