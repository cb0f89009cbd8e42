"""The DMS backend: resources, their lifecycle, and the guards DMS applies.

Each public method is one API operation: it takes the request's parameters (AWS names), checks
existence and state (raising the exact DMS fault), makes the transition, persists, and returns the
response body. Short-lived states (``creating``, ``modifying``, ``deleting``, ``testing``) are
kept for ``transition_seconds`` and advanced lazily whenever the backend is read, so the boto3
waiters see them as on AWS. Task runs (the full load, then change capture for CDC tasks) run in
``engine.task_run`` threads that report back through ``TaskRunProgress``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import asyncpg

from dms_spec.status import (
    ConnectionStatus,
    InstanceStatus,
    MigrationType,
    StartType,
    StopReason,
    TableState,
    TaskStatus,
)
from localdms.endpoint_settings import (
    POSTGRES_ENGINES,
    S3_ENGINES,
    PostgresSource,
    S3Target,
    parse_extra_connection_attributes,
)
from localdms.engine.cdc import StopAt, drop_capture, on_thread, slot_name
from localdms.engine.pgoutput import parse_lsn
from localdms.engine.task_run import CdcSpec, RunSpec, TaskRun, check_bucket, source_error
from localdms.exceptions import (
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
)
from localdms.identifiers import (
    arn_kind,
    make_arn,
    random_resource_id,
    validate_identifier,
)
from localdms.store import Store
from localdms.table_mappings import TablePlan, validate_table_mappings

log = logging.getLogger(__name__)

GONE = "__gone__"
TABLE_SAVE_INTERVAL_SECONDS = 1.0
RUNNING_STATES = (TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.STOPPING)
RESTART_MESSAGE = (
    "Last Error  localdms stopped while the task was {status}: the server process ended before "
    "the task finished. Start it again with reload-target (or resume-processing to load only the "
    "tables not yet completed). Stop Reason RECOVERABLE_ERROR Error Level RECOVERABLE"
)


def default_task_settings() -> dict[str, Any]:
    """The settings a real DMS task reports when created with none (a captured document)."""
    text = resources.files("localdms").joinpath("default_task_settings.json").read_text()
    settings: dict[str, Any] = json.loads(text)
    settings.pop("_comment", None)
    return settings


def merge_settings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (objects merge, other values replace)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class Resource:
    """Common lifecycle: a status that may be due to change at ``pending_at``."""

    arn: str
    identifier: str
    status: str
    created: float
    pending_status: str | None = None
    pending_at: float = 0.0

    def schedule(self, status: str, next_status: str, delay: float) -> None:
        self.status = status
        self.pending_status = next_status
        self.pending_at = time.time() + delay

    def advance(self, now: float) -> bool:
        """Apply a due transition; True if one happened."""
        if self.pending_status is not None and now >= self.pending_at:
            self.status, self.pending_status = self.pending_status, None
            return True
        return False


@dataclass
class Endpoint(Resource):
    endpoint_type: str = "SOURCE"
    engine_name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    password: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "EndpointIdentifier": self.identifier,
            "EndpointType": self.endpoint_type,
            "EngineName": self.engine_name,
            "EngineDisplayName": "PostgreSQL" if self.engine_name != "s3" else "Amazon S3",
            "Status": self.status,
            "EndpointArn": self.arn,
            "SslMode": self.fields.get("SslMode", "none"),
            **{k: v for k, v in self.fields.items() if k != "SslMode"},
        }
        if self.engine_name == "s3":
            body["S3Settings"] = dict(self.settings)
        else:
            body["PostgreSQLSettings"] = dict(self.settings)
        return body

    def source(self) -> PostgresSource:
        secret = {"Password": self.password} if self.password else {}
        return PostgresSource.from_endpoint({**self.fields, **secret}, self.settings)

    def target(self) -> S3Target:
        return S3Target.from_settings(self.settings)


@dataclass
class ReplicationInstance(Resource):
    instance_class: str = ""
    allocated_storage: int = 50
    engine_version: str = "3.5.3"
    publicly_accessible: bool = False
    multi_az: bool = False

    def to_api(self) -> dict[str, Any]:
        return {
            "ReplicationInstanceIdentifier": self.identifier,
            "ReplicationInstanceClass": self.instance_class,
            "ReplicationInstanceStatus": self.status,
            "AllocatedStorage": self.allocated_storage,
            "InstanceCreateTime": self.created,
            "ReplicationInstanceArn": self.arn,
            "EngineVersion": self.engine_version,
            "PubliclyAccessible": self.publicly_accessible,
            "MultiAZ": self.multi_az,
            "AvailabilityZone": "localdms-1a",
            "AutoMinorVersionUpgrade": True,
        }


@dataclass
class Connection(Resource):
    endpoint_arn: str = ""
    instance_arn: str = ""
    endpoint_identifier: str = ""
    instance_identifier: str = ""
    last_failure_message: str = ""
    result: str = ConnectionStatus.SUCCESSFUL

    def to_api(self) -> dict[str, Any]:
        body = {
            "ReplicationInstanceArn": self.instance_arn,
            "EndpointArn": self.endpoint_arn,
            "Status": self.status,
            "EndpointIdentifier": self.endpoint_identifier,
            "ReplicationInstanceIdentifier": self.instance_identifier,
        }
        if self.status == ConnectionStatus.FAILED:
            body["LastFailureMessage"] = self.last_failure_message
        return body


@dataclass
class TableStatistics:
    """One table's statistics; the API fields plus the row estimate used for progress."""

    schema_name: str
    table_name: str
    state: str = TableState.BEFORE_LOAD
    full_load_rows: int = 0
    start_time: float | None = None
    end_time: float | None = None
    reloaded: bool = False
    last_update: float = 0.0
    estimated_rows: int = 0
    error: str = ""
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    ddls: int = 0
    applied_inserts: int = 0
    applied_updates: int = 0
    applied_deletes: int = 0
    applied_ddls: int = 0

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "SchemaName": self.schema_name,
            "TableName": self.table_name,
            "Inserts": self.inserts,
            "Deletes": self.deletes,
            "Updates": self.updates,
            "Ddls": self.ddls,
            "AppliedInserts": self.applied_inserts,
            "AppliedDeletes": self.applied_deletes,
            "AppliedUpdates": self.applied_updates,
            "AppliedDdls": self.applied_ddls,
            "FullLoadRows": self.full_load_rows,
            "FullLoadCondtnlChkFailedRows": 0,
            "FullLoadErrorRows": 0,
            "FullLoadReloaded": self.reloaded,
            "LastUpdateTime": self.last_update,
            "TableState": self.state,
            "ValidationPendingRecords": 0,
            "ValidationFailedRecords": 0,
            "ValidationSuspendedRecords": 0,
            "ValidationState": "Not enabled",
        }
        if self.start_time is not None:
            body["FullLoadStartTime"] = self.start_time
        if self.end_time is not None:
            body["FullLoadEndTime"] = self.end_time
        return body


@dataclass
class ReplicationTask(Resource):
    source_arn: str = ""
    target_arn: str = ""
    instance_arn: str = ""
    migration_type: str = MigrationType.FULL_LOAD
    table_mappings: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    last_failure_message: str | None = None
    stop_reason: str | None = None
    has_run: bool = False
    start_date: float | None = None
    fresh_start_date: float | None = None
    stop_date: float | None = None
    full_load_start: float | None = None
    full_load_finish: float | None = None
    cdc_start_position: str | None = None
    cdc_stop_position: str | None = None
    task_data: str | None = None
    slot_name: str | None = None
    """The CDC replication slot localdms created on the source for this task."""
    recovery_checkpoint: str | None = None
    capturing: bool = False
    """The full load is over (or there is none) and the task captures changes."""
    tables: dict[str, TableStatistics] = field(default_factory=dict)

    def stats(self, now: float) -> dict[str, Any]:
        """ReplicationTaskStats, derived from the tables."""
        states = [t.state for t in self.tables.values()]
        done = sum(s in (TableState.COMPLETED, TableState.ERROR) for s in states)
        if self.capturing or (
            self.status == TaskStatus.STOPPED
            and self.stop_reason == StopReason.FULL_LOAD_ONLY_FINISHED
        ):
            percent = 100
        elif not self.tables:
            percent = 100 if self.status == TaskStatus.FAILED else 0
        else:
            weights = [max(t.estimated_rows, 1) for t in self.tables.values()]
            loaded = [
                w
                if t.state in (TableState.COMPLETED, TableState.ERROR)
                else min(t.full_load_rows, int(w * 0.99))
                for t, w in zip(self.tables.values(), weights, strict=True)
            ]
            percent = min(100, int(100 * sum(loaded) / sum(weights))) if done < len(states) else 100
        end = self.stop_date if self.status not in RUNNING_STATES and self.stop_date else now
        stats: dict[str, Any] = {
            "FullLoadProgressPercent": percent,
            "ElapsedTimeMillis": int(1000 * (end - (self.start_date or end))),
            "TablesLoaded": states.count(TableState.COMPLETED),
            "TablesLoading": states.count(TableState.FULL_LOAD),
            "TablesQueued": states.count(TableState.BEFORE_LOAD),
            "TablesErrored": states.count(TableState.ERROR),
        }
        for key, value in (
            ("FreshStartDate", self.fresh_start_date),
            ("StartDate", self.start_date),
            ("StopDate", self.stop_date if self.status not in RUNNING_STATES else None),
            ("FullLoadStartDate", self.full_load_start),
            ("FullLoadFinishDate", self.full_load_finish),
        ):
            if value is not None:
                stats[key] = value
        return stats

    def to_api(self, now: float, with_settings: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ReplicationTaskIdentifier": self.identifier,
            "SourceEndpointArn": self.source_arn,
            "TargetEndpointArn": self.target_arn,
            "ReplicationInstanceArn": self.instance_arn,
            "MigrationType": self.migration_type,
            "TableMappings": self.table_mappings,
            "Status": self.status,
            "ReplicationTaskCreationDate": self.created,
            "ReplicationTaskArn": self.arn,
        }
        if with_settings:
            body["ReplicationTaskSettings"] = json.dumps(self.settings)
        optional = {
            "LastFailureMessage": self.last_failure_message,
            "StopReason": self.stop_reason,
            "ReplicationTaskStartDate": self.start_date,
            "CdcStartPosition": self.cdc_start_position,
            "CdcStopPosition": self.cdc_stop_position,
            "RecoveryCheckpoint": self.recovery_checkpoint,
            "TaskData": self.task_data,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if self.has_run:
            body["ReplicationTaskStats"] = self.stats(now)
        return body


def table_key(schema: str, table: str) -> str:
    return f"{schema}\x00{table}"


class DmsBackend:
    """All DMS resources of one localdms server.

    Args:
        store: where state persists.
        region: the region in ARNs.
        account_id: the account in ARNs.
        transition_seconds: how long transient states (creating, starting, modifying, deleting,
            testing) stay visible. DMS takes minutes; a second is enough for the waiters.
        s3_factory: returns a boto3 S3 client for the task runs.
    """

    def __init__(
        self,
        store: Store,
        s3_factory: Callable[[], Any],
        region: str = "us-east-1",
        account_id: str = "123456789012",
        transition_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.s3_factory = s3_factory
        self.region = region
        self.account_id = account_id
        self.transition_seconds = transition_seconds
        self.lock = threading.RLock()
        self.endpoints: dict[str, Endpoint] = {}
        self.instances: dict[str, ReplicationInstance] = {}
        self.tasks: dict[str, ReplicationTask] = {}
        self.connections: dict[tuple[str, str], Connection] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.runs: dict[str, TaskRun] = {}
        self._last_save = 0.0
        self._dirty = False
        self._load()

    # ----------------------------------------------------------------- persistence
    def _load(self) -> None:
        state = self.store.load()
        for raw in state.get("endpoints", []):
            endpoint = Endpoint(**raw)
            self.endpoints[endpoint.arn] = endpoint
        for raw in state.get("instances", []):
            instance = ReplicationInstance(**raw)
            self.instances[instance.arn] = instance
        for raw in state.get("connections", []):
            connection = Connection(**raw)
            self.connections[(connection.endpoint_arn, connection.instance_arn)] = connection
        for raw in state.get("tasks", []):
            tables = {k: TableStatistics(**v) for k, v in raw.pop("tables", {}).items()}
            task = ReplicationTask(**raw, tables=tables)
            if task.status in RUNNING_STATES and not task.capturing:
                self._recover_interrupted(task)
            self.tasks[task.arn] = task
        self.tags = state.get("tags", {})
        self._save()
        for task in self.tasks.values():
            if task.status in RUNNING_STATES and task.capturing:
                # The slot kept every change after the checkpoint: capture simply goes on.
                log.info("task %s: resuming change capture from %s", task.identifier,
                         task.recovery_checkpoint)  # fmt: skip
                self._start(task, StartType.RESUME_PROCESSING)

    def _recover_interrupted(self, task: ReplicationTask) -> None:
        message = RESTART_MESSAGE.format(status=task.status)
        task.status, task.pending_status = TaskStatus.FAILED, None
        task.last_failure_message = message
        task.stop_reason = StopReason.RECOVERABLE_ERROR
        task.stop_date = time.time()
        for table in task.tables.values():
            if table.state == TableState.FULL_LOAD:
                table.state = TableState.ERROR
                table.error = "The load was interrupted when localdms stopped."

    def _save_soon(self) -> None:
        """Persist table-level changes at most once per ``TABLE_SAVE_INTERVAL_SECONDS``.

        Each save rewrites and fsyncs the whole state; per table transition that cost 34 ms at
        600 tables (41 of 48 s of a load, measured), so table changes are batched. Task-level
        transitions still save at once (``_save``).
        """
        if time.monotonic() - self._last_save >= TABLE_SAVE_INTERVAL_SECONDS:
            self._save()
        else:
            self._dirty = True

    def _save(self) -> None:
        self._last_save = time.monotonic()
        self._dirty = False
        self.store.save(
            {
                "endpoints": [asdict(e) for e in self.endpoints.values()],
                "instances": [asdict(i) for i in self.instances.values()],
                "connections": [asdict(c) for c in self.connections.values()],
                "tasks": [asdict(t) for t in self.tasks.values()],
                "tags": self.tags,
            }
        )

    def _advance(self) -> None:
        """Apply due transitions; drop resources whose deletion finished."""
        now = time.time()
        changed = False
        for collection in (self.endpoints, self.instances, self.tasks):
            for arn, resource in list(collection.items()):
                if resource.advance(now):
                    changed = True
                    if resource.status == GONE:
                        del collection[arn]
                        self.tags.pop(arn, None)
        for connection in self.connections.values():
            changed |= connection.advance(now)
        if changed or (
            self._dirty and time.monotonic() - self._last_save >= TABLE_SAVE_INTERVAL_SECONDS
        ):
            self._save()

    def _arn(self, kind: str, resource_identifier: str | None) -> str:
        if resource_identifier is not None:
            validate_identifier("ResourceIdentifier", resource_identifier, 31)
        return make_arn(
            self.region, self.account_id, kind, resource_identifier or random_resource_id()
        )

    # ----------------------------------------------------------------- lookups
    def _get(self, collection: dict[str, Any], arn: Any, what: str) -> Any:
        if not isinstance(arn, str) or arn not in collection:
            raise ResourceNotFoundFault(f"{what} {arn} not found.")
        return collection[arn]

    def _endpoint(self, arn: Any) -> Endpoint:
        endpoint: Endpoint = self._get(self.endpoints, arn, "Endpoint")
        return endpoint

    def _instance(self, arn: Any) -> ReplicationInstance:
        instance: ReplicationInstance = self._get(self.instances, arn, "Replication instance")
        return instance

    def _task(self, arn: Any) -> ReplicationTask:
        task: ReplicationTask = self._get(self.tasks, arn, "Replication task")
        return task

    def _identifier_taken(self, collection: dict[str, Any], identifier: str) -> bool:
        return any(r.identifier.lower() == identifier.lower() for r in collection.values())

    # ----------------------------------------------------------------- endpoints
    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
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
        with self.lock:
            self._advance()
            items = _filtered(
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
            page, marker = _paginate(items, params)
            return _with_marker({"Endpoints": [e.to_api() for e in page]}, marker)

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
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

    # ----------------------------------------------------------------- instances
    def create_replication_instance(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            identifier = validate_identifier(
                "ReplicationInstanceIdentifier", params.get("ReplicationInstanceIdentifier"), 63
            ).lower()
            instance_class = params.get("ReplicationInstanceClass")
            if not isinstance(instance_class, str) or not instance_class:
                raise InvalidParameterValueException("ReplicationInstanceClass is required.")
            if self._identifier_taken(self.instances, identifier):
                raise ResourceAlreadyExistsFault(
                    f"Replication instance {identifier} already exists."
                )
            instance = ReplicationInstance(
                arn=self._arn("rep", params.get("ResourceIdentifier")),
                identifier=identifier,
                status=InstanceStatus.CREATING,
                created=time.time(),
                instance_class=instance_class,
                allocated_storage=int(params.get("AllocatedStorage", 50)),
                engine_version=str(params.get("EngineVersion", "3.5.3")),
                publicly_accessible=bool(params.get("PubliclyAccessible", False)),
                multi_az=bool(params.get("MultiAZ", False)),
            )
            instance.schedule(
                InstanceStatus.CREATING, InstanceStatus.AVAILABLE, self.transition_seconds
            )
            self.instances[instance.arn] = instance
            self._set_tags(instance.arn, params.get("Tags") or [])
            self._save()
            return {"ReplicationInstance": instance.to_api()}

    def describe_replication_instances(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            items = _filtered(
                list(self.instances.values()),
                params.get("Filters"),
                {
                    "replication-instance-arn": lambda i: [i.arn],
                    "replication-instance-id": lambda i: [i.identifier],
                    "replication-instance-class": lambda i: [i.instance_class],
                    "engine-version": lambda i: [i.engine_version],
                },
                id_filters=("replication-instance-id",),
                what="replication instances",
            )
            page, marker = _paginate(items, params)
            return _with_marker({"ReplicationInstances": [i.to_api() for i in page]}, marker)

    def delete_replication_instance(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            instance = self._instance(params.get("ReplicationInstanceArn"))
            users = [t.identifier for t in self.tasks.values() if t.instance_arn == instance.arn]
            if users:
                raise InvalidResourceStateFault(
                    f"Replication instance {instance.arn} is used by replication task(s) "
                    f"{', '.join(users)}; delete the tasks first."
                )
            instance.schedule(InstanceStatus.DELETING, GONE, self.transition_seconds)
            for key in [k for k in self.connections if k[1] == instance.arn]:
                del self.connections[key]
            self._save()
            return {"ReplicationInstance": instance.to_api()}

    # ----------------------------------------------------------------- connections
    def test_connection(self, params: dict[str, Any]) -> dict[str, Any]:
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
        with self.lock:
            self._advance()
            items = _filtered(
                list(self.connections.values()),
                params.get("Filters"),
                {
                    "endpoint-arn": lambda c: [c.endpoint_arn],
                    "replication-instance-arn": lambda c: [c.instance_arn],
                },
                what="connections",
            )
            page, marker = _paginate(items, params)
            return _with_marker({"Connections": [c.to_api() for c in page]}, marker)

    # ----------------------------------------------------------------- tasks
    def _parse_task_settings(self, text: Any, creating: bool) -> dict[str, Any]:
        if text in (None, ""):
            return {}
        try:
            settings = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterValueException(
                f"ReplicationTaskSettings is not valid JSON: {exc}."
            ) from exc
        if not isinstance(settings, dict):
            raise InvalidParameterValueException("ReplicationTaskSettings must be a JSON object.")
        logging_settings = settings.get("Logging") or {}
        if creating and (
            logging_settings.get("CloudWatchLogGroup")
            or logging_settings.get("CloudWatchLogStream")
        ):
            raise InvalidParameterValueException(
                "Task Settings CloudWatchLogGroup or CloudWatchLogStream cannot be set on create."
            )
        return settings

    def create_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            identifier = validate_identifier(
                "ReplicationTaskIdentifier", params.get("ReplicationTaskIdentifier")
            )
            migration_type = _migration_type(params.get("MigrationType"))
            mappings = params.get("TableMappings")
            if not isinstance(mappings, str):
                raise InvalidParameterValueException("TableMappings is required (a JSON string).")
            validate_table_mappings(mappings)
            overrides = self._parse_task_settings(params.get("ReplicationTaskSettings"), True)
            source = self._endpoint(params.get("SourceEndpointArn"))
            target = self._endpoint(params.get("TargetEndpointArn"))
            instance = self._instance(params.get("ReplicationInstanceArn"))
            if source.endpoint_type != "SOURCE" or target.endpoint_type != "TARGET":
                raise InvalidParameterValueException(
                    "SourceEndpointArn must name a source endpoint and TargetEndpointArn a target "
                    "endpoint."
                )
            if instance.status != InstanceStatus.AVAILABLE:
                raise InvalidResourceStateFault(
                    f"Replication instance {instance.arn} is {instance.status}, not available."
                )
            if self._identifier_taken(self.tasks, identifier):
                raise ResourceAlreadyExistsFault(f"Replication task {identifier} already exists.")
            task = ReplicationTask(
                arn=self._arn("task", params.get("ResourceIdentifier")),
                identifier=identifier,
                status=TaskStatus.CREATING,
                created=time.time(),
                source_arn=source.arn,
                target_arn=target.arn,
                instance_arn=instance.arn,
                migration_type=migration_type,
                table_mappings=mappings,
                settings=merge_settings(default_task_settings(), overrides),
                cdc_start_position=params.get("CdcStartPosition"),
                cdc_stop_position=params.get("CdcStopPosition"),
                task_data=params.get("TaskData"),
            )
            _check_cdc_positions(task)
            task.schedule(TaskStatus.CREATING, TaskStatus.READY, self.transition_seconds)
            self.tasks[task.arn] = task
            self._set_tags(task.arn, params.get("Tags") or [])
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def modify_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            if task.status not in (TaskStatus.READY, TaskStatus.STOPPED, TaskStatus.FAILED):
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; it can be modified only when "
                    "ready, stopped or failed."
                )
            if (
                "MigrationType" in params
                and _migration_type(params["MigrationType"]) != task.migration_type
            ):
                raise InvalidParameterValueException(
                    f"The MigrationType of replication task {task.identifier} cannot be changed "
                    f"(it is {task.migration_type}); create a new task instead."
                )
            if "ReplicationTaskIdentifier" in params:
                identifier = validate_identifier(
                    "ReplicationTaskIdentifier", params["ReplicationTaskIdentifier"]
                )
                if identifier.lower() != task.identifier.lower() and self._identifier_taken(
                    self.tasks, identifier
                ):
                    raise ResourceAlreadyExistsFault(
                        f"Replication task {identifier} already exists."
                    )
                task.identifier = identifier
            if "TableMappings" in params:
                validate_table_mappings(params["TableMappings"])
                task.table_mappings = params["TableMappings"]
            if params.get("ReplicationTaskSettings"):
                overrides = self._parse_task_settings(params["ReplicationTaskSettings"], False)
                task.settings = merge_settings(task.settings, overrides)
            for key, attribute in (
                ("CdcStartPosition", "cdc_start_position"),
                ("CdcStopPosition", "cdc_stop_position"),
                ("TaskData", "task_data"),
            ):
                if key in params:
                    setattr(task, attribute, params[key])
            task.schedule(TaskStatus.MODIFYING, task.status, self.transition_seconds)
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def describe_replication_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            items = _filtered(
                list(self.tasks.values()),
                params.get("Filters"),
                {
                    "replication-task-arn": lambda t: [t.arn],
                    "replication-task-id": lambda t: [t.identifier],
                    "migration-type": lambda t: [t.migration_type],
                    "endpoint-arn": lambda t: [t.source_arn, t.target_arn],
                    "replication-instance-arn": lambda t: [t.instance_arn],
                },
                id_filters=("replication-task-id",),
                what="replication tasks",
            )
            page, marker = _paginate(items, params)
            now = time.time()
            with_settings = not params.get("WithoutSettings", False)
            return _with_marker(
                {"ReplicationTasks": [t.to_api(now, with_settings) for t in page]}, marker
            )

    def start_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            start_type = params.get("StartReplicationTaskType")
            if start_type not in tuple(StartType):
                raise InvalidParameterValueException(
                    f"StartReplicationTaskType {start_type!r} is not valid; valid values: "
                    f"{', '.join(StartType)}."
                )
            if task.status not in (TaskStatus.READY, TaskStatus.STOPPED, TaskStatus.FAILED):
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; it can be started only when "
                    "ready, stopped or failed."
                )
            if start_type == StartType.START_REPLICATION and task.has_run:
                raise InvalidParameterCombinationException(
                    "Start Type : START_REPLICATION, valid only for tasks running for the first time"
                )
            if start_type != StartType.START_REPLICATION and not task.has_run:
                raise InvalidParameterCombinationException(
                    f"Start Type : {start_type.upper().replace('-', '_')}, valid only for tasks "
                    "that have run before; use start-replication for a first run"
                )
            if (
                params.get("CdcStartTime") is not None
                and params.get("CdcStartPosition") is not None
            ):
                raise InvalidParameterCombinationException(
                    "CdcStartTime and CdcStartPosition cannot both be given."
                )
            if params.get("CdcStartTime") is not None:
                raise InvalidParameterCombinationException(
                    "A PostgreSQL source cannot start change capture from a time: use "
                    "CdcStartPosition (a WAL position such as 4AF/B00000D0)."
                )
            if task.migration_type == MigrationType.FULL_LOAD and (
                params.get("CdcStartPosition") or params.get("CdcStopPosition")
            ):
                raise InvalidParameterCombinationException(
                    "CdcStartPosition and CdcStopPosition apply to cdc and full-load-and-cdc "
                    "tasks only."
                )
            for name, attribute in (
                ("CdcStartPosition", "cdc_start_position"),
                ("CdcStopPosition", "cdc_stop_position"),
            ):
                if params.get(name) is not None:
                    setattr(task, attribute, str(params[name]))
            _check_cdc_positions(task)
            self._start(task, StartType(start_type))
            return {"ReplicationTask": task.to_api(time.time())}

    def _start(self, task: ReplicationTask, start_type: StartType) -> None:
        now = time.time()
        resume = start_type == StartType.RESUME_PROCESSING
        skip = frozenset(
            (t.schema_name, t.table_name)
            for t in task.tables.values()
            if resume and t.state == TableState.COMPLETED
        )
        if not resume:
            task.tables = {}
            task.fresh_start_date = now
        task.status, task.pending_status = TaskStatus.STARTING, None
        task.has_run = True
        task.start_date = now
        task.stop_reason = task.last_failure_message = None
        task.stop_date = None
        cdc = self._cdc_spec(task, start_type)
        if cdc is None or cdc.fresh:
            task.full_load_start = task.full_load_finish = None
            task.capturing = False
            task.recovery_checkpoint = None
        self._save()
        source = self._endpoint(task.source_arn)
        target = self._endpoint(task.target_arn)
        full_load = task.settings.get("FullLoadSettings", {})
        errors = task.settings.get("ErrorBehavior", {})
        spec = RunSpec(
            task_identifier=task.identifier,
            source=source.source(),
            target=target.target(),
            rules=validate_table_mappings(task.table_mappings),
            max_subtasks=int(full_load.get("MaxFullLoadSubTasks", 8)),
            fail_on_no_tables=bool(errors.get("FailOnNoTablesCaptured", True)),
            # A fresh CDC start reloads every table in the new slot's snapshot.
            skip_tables=skip if cdc is None or not cdc.fresh else frozenset(),
            min_starting_seconds=self.transition_seconds,
            cdc=cdc,
        )
        run = TaskRun(spec, TaskRunProgress(self, task.arn), self.s3_factory)
        self.runs[task.arn] = run
        run.start()

    def _cdc_spec(self, task: ReplicationTask, start_type: StartType) -> CdcSpec | None:
        """How the run captures changes: None for full-load tasks.

        A fresh start (start-replication, reload-target, or resume-processing of a task whose
        full load never finished) creates the slot and loads the tables in its snapshot; a resume
        of a capturing task continues the slot from the RecoveryCheckpoint.
        """
        if task.migration_type == MigrationType.FULL_LOAD:
            return None
        settings = task.settings.get("FullLoadSettings", {})
        after = (
            "not-applied"
            if settings.get("StopTaskCachedChangesNotApplied")
            else "applied"
            if settings.get("StopTaskCachedChangesApplied")
            else ""
        )
        stop_at = StopAt.parse(task.cdc_stop_position) if task.cdc_stop_position else None
        endpoint_slot = self._endpoint(task.source_arn).source().slot_name
        slot = endpoint_slot or task.slot_name or slot_name(task.arn)
        own = not endpoint_slot
        if start_type == StartType.RESUME_PROCESSING and task.capturing:
            start = task.recovery_checkpoint
            return CdcSpec(
                slot, False, False, parse_lsn(start) if start else 0, stop_at, after, own
            )
        if start_type == StartType.RESUME_PROCESSING:
            task.tables = {}
        full_load = task.migration_type == MigrationType.FULL_LOAD_AND_CDC
        start = task.cdc_start_position if not full_load else None
        return CdcSpec(slot, True, full_load, parse_lsn(start) if start else 0, stop_at, after, own)

    def stop_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            if task.status not in (TaskStatus.RUNNING, TaskStatus.STARTING):
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is currently not running (status {task.status})."
                )
            task.status = TaskStatus.STOPPING
            self._save()
            run = self.runs.get(task.arn)
            if run is not None:
                run.stop()
            return {"ReplicationTask": task.to_api(time.time())}

    def delete_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            if task.status in (
                *RUNNING_STATES,
                TaskStatus.CREATING,
                TaskStatus.MODIFYING,
                TaskStatus.DELETING,
            ):
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; stop it (and wait for stopped) "
                    "before deleting it."
                )
            task.schedule(TaskStatus.DELETING, GONE, self.transition_seconds)
            self.runs.pop(task.arn, None)
            if task.slot_name and task.source_arn in self.endpoints:
                source, slot = self._endpoint(task.source_arn).source(), task.slot_name
                on_thread(lambda: drop_capture(source, slot), f"drop-slot-{slot}")
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def describe_table_statistics(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            items = _filtered(
                list(task.tables.values()),
                params.get("Filters"),
                {
                    "schema-name": lambda t: [t.schema_name],
                    "table-name": lambda t: [t.table_name],
                    "table-state": lambda t: [t.state],
                },
                what=None,
            )
            page, marker = _paginate(items, params, maximum=500)
            return _with_marker(
                {"ReplicationTaskArn": task.arn, "TableStatistics": [t.to_api() for t in page]},
                marker,
            )

    def reload_tables(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            tables = params.get("TablesToReload") or []
            if not 1 <= len(tables) <= 10:
                raise InvalidParameterValueException("TablesToReload takes 1 to 10 tables.")
            if params.get("ReloadOption", "data-reload") != "data-reload":
                raise InvalidParameterValueException(
                    "localdms supports ReloadOption data-reload only (validation is not emulated)."
                )
            if task.status != TaskStatus.RUNNING:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}: tables can be reloaded only "
                    "while the task is in the RUNNING state."
                )
            keys = [(str(item.get("SchemaName")), str(item.get("TableName"))) for item in tables]
            for schema, table in keys:
                if table_key(schema, table) not in task.tables:
                    raise ResourceNotFoundFault(
                        f"Table {schema}.{table} is not part of replication task {task.identifier}."
                    )
            run = self.runs.get(task.arn)
            if run is None or not run.reload(keys):
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is finishing its load: tables can be reloaded "
                    "only while the task is in the RUNNING state. Start it with resume-processing."
                )
            for schema, table in keys:
                statistics = task.tables[table_key(schema, table)]
                statistics.state = TableState.RELOADING
                statistics.reloaded = True
                statistics.full_load_rows = 0
                statistics.error = ""
                statistics.last_update = time.time()
            self._save()
            return {"ReplicationTaskArn": task.arn}

    # ----------------------------------------------------------------- tags
    def _resource_exists(self, arn: Any) -> None:
        if not isinstance(arn, str) or arn_kind(arn) is None:
            raise InvalidParameterValueException(f"{arn!r} is not a valid DMS resource ARN.")
        if arn not in self.tasks and arn not in self.endpoints and arn not in self.instances:
            raise ResourceNotFoundFault(f"Resource {arn} not found.")

    def _set_tags(self, arn: str, tags: Sequence[dict[str, Any]]) -> None:
        for tag in tags:
            key = str(tag.get("Key", ""))
            if not 1 <= len(key) <= 128 or key.lower().startswith(("aws:", "dms:")):
                raise InvalidParameterValueException(
                    f"Tag key {key!r} is not valid: 1 to 128 characters, not starting with aws: or dms:."
                )
            self.tags.setdefault(arn, {})[key] = str(tag.get("Value", ""))

    def add_tags_to_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            self._resource_exists(params.get("ResourceArn"))
            self._set_tags(params["ResourceArn"], params.get("Tags") or [])
            self._save()
            return {}

    def remove_tags_from_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            self._resource_exists(params.get("ResourceArn"))
            tags = self.tags.get(params["ResourceArn"], {})
            for key in params.get("TagKeys") or []:
                tags.pop(key, None)
            self._save()
            return {}

    def list_tags_for_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._advance()
            arns = list(params.get("ResourceArnList") or [])
            if params.get("ResourceArn"):
                arns.insert(0, params["ResourceArn"])
            if not arns:
                raise InvalidParameterValueException("Give ResourceArn or ResourceArnList.")
            tag_list = []
            for arn in arns:
                self._resource_exists(arn)
                for key, value in self.tags.get(arn, {}).items():
                    tag_list.append({"Key": key, "Value": value, "ResourceArn": arn})
            return {"TagList": tag_list}


class TaskRunProgress:
    """The backend's side of ``RunProgress``: apply a run's events to its task, under the lock."""

    def __init__(self, backend: DmsBackend, task_arn: str) -> None:
        self.backend = backend
        self.task_arn = task_arn

    def _update(self, change: Callable[[ReplicationTask], None], save: str = "now") -> None:
        """Apply ``change``; persist now (task transitions), soon (table ones) or not (row counts)."""
        with self.backend.lock:
            task = self.backend.tasks.get(self.task_arn)
            if task is None:
                return
            change(task)
            if save == "now":
                self.backend._save()
            elif save == "soon":
                self.backend._save_soon()

    def _table(self, task: ReplicationTask, plan: TablePlan) -> TableStatistics:
        key = table_key(plan.source.schema, plan.source.name)
        return task.tables.setdefault(key, TableStatistics(plan.source.schema, plan.source.name))

    def running(self, plans: Sequence[TablePlan]) -> None:
        def change(task: ReplicationTask) -> None:
            now = time.time()
            if task.status == TaskStatus.STARTING:
                task.status = TaskStatus.RUNNING
            task.full_load_start = now
            for plan in plans:
                table = self._table(task, plan)
                table.estimated_rows = plan.source.estimated_rows
                if table.state != TableState.COMPLETED:
                    table.reloaded = table.state != TableState.BEFORE_LOAD
                    table.state = TableState.BEFORE_LOAD
                    table.full_load_rows = 0
                    table.start_time = table.end_time = None
                table.last_update = now

        self._update(change)

    def table_started(self, plan: TablePlan) -> None:
        def change(task: ReplicationTask) -> None:
            table = self._table(task, plan)
            table.state = TableState.FULL_LOAD
            table.start_time = table.last_update = time.time()

        self._update(change, save="soon")

    def table_rows(self, plan: TablePlan, rows: int) -> None:
        def change(task: ReplicationTask) -> None:
            table = self._table(task, plan)
            table.full_load_rows = rows
            table.last_update = time.time()

        self._update(change, save="never")

    def table_completed(self, plan: TablePlan, rows: int) -> None:
        def change(task: ReplicationTask) -> None:
            table = self._table(task, plan)
            table.state = TableState.COMPLETED
            table.full_load_rows = rows
            table.end_time = table.last_update = time.time()

        self._update(change, save="soon")

    def table_failed(self, plan: TablePlan, message: str) -> None:
        log.warning("task %s: %s", self.task_arn, message)

        def change(task: ReplicationTask) -> None:
            table = self._table(task, plan)
            table.state = TableState.ERROR
            table.error = message
            table.end_time = table.last_update = time.time()

        self._update(change, save="soon")

    def finished(self) -> None:
        def change(task: ReplicationTask) -> None:
            now = time.time()
            task.status = TaskStatus.STOPPED
            task.stop_reason = StopReason.FULL_LOAD_ONLY_FINISHED
            task.stop_date = task.full_load_finish = now
            errors = [t.error for t in task.tables.values() if t.state == TableState.ERROR]
            if errors:
                task.last_failure_message = "Last Error  " + "; ".join(errors)

        self._update(change)

    def stopped(self, reason: str = StopReason.NORMAL) -> None:
        def change(task: ReplicationTask) -> None:
            task.status = TaskStatus.STOPPED
            task.stop_reason = reason
            task.stop_date = time.time()
            for table in task.tables.values():
                if table.state == TableState.FULL_LOAD:
                    table.state = TableState.BEFORE_LOAD
                    table.full_load_rows = 0

        self._update(change)

    def failed(self, message: str) -> None:
        def change(task: ReplicationTask) -> None:
            task.status = TaskStatus.FAILED
            task.last_failure_message = task.stop_reason = message
            task.stop_date = time.time()

        self._update(change)

    def capture_created(self, slot: str) -> None:
        def change(task: ReplicationTask) -> None:
            task.slot_name = slot
            task.recovery_checkpoint = None

        self._update(change)

    def capturing(self) -> None:
        """The full load is over (or there is none): the task now captures changes."""

        def change(task: ReplicationTask) -> None:
            now = time.time()
            if task.migration_type == MigrationType.FULL_LOAD_AND_CDC and not task.capturing:
                task.full_load_finish = now
            task.capturing = True
            for table in task.tables.values():
                if table.state == TableState.BEFORE_LOAD:  # cdc tasks have no load
                    table.state = TableState.COMPLETED
                table.last_update = now

        self._update(change)

    def changes_captured(self, counts: Mapping[TablePlan, Mapping[str, int]]) -> None:
        def change(task: ReplicationTask) -> None:
            now = time.time()
            for plan, numbers in counts.items():
                _add_changes(self._table(task, plan), numbers, "", now)

        self._update(change, save="soon")

    def changes_applied(
        self, counts: Mapping[TablePlan, Mapping[str, int]], checkpoint: str
    ) -> None:
        """Changes are in S3: store the checkpoint durably before the slot is told."""

        def change(task: ReplicationTask) -> None:
            now = time.time()
            for plan, numbers in counts.items():
                _add_changes(self._table(task, plan), numbers, "applied_", now)
            task.recovery_checkpoint = checkpoint

        self._update(change)


def _add_changes(
    table: TableStatistics, numbers: Mapping[str, int], prefix: str, now: float
) -> None:
    """Add I/U/D/DDL counts to a table's ``inserts``... (or ``applied_inserts``...) fields."""
    for name, op in (("inserts", "I"), ("updates", "U"), ("deletes", "D"), ("ddls", "DDL")):
        setattr(table, prefix + name, getattr(table, prefix + name) + numbers[op])
    table.last_update = now


def _check_cdc_positions(task: ReplicationTask) -> None:
    """InvalidParameterValueException unless the task's CDC positions can be read."""
    try:
        if task.cdc_start_position:
            parse_lsn(task.cdc_start_position)
    except ValueError as exc:
        raise InvalidParameterValueException(
            f"CdcStartPosition {task.cdc_start_position!r} is not valid for a PostgreSQL "
            "source: give a WAL position (LSN) such as 4AF/B00000D0."
        ) from exc
    try:
        if task.cdc_stop_position:
            StopAt.parse(task.cdc_stop_position)
    except ValueError as exc:
        raise InvalidParameterValueException(str(exc)) from exc


def _migration_type(value: Any) -> str:
    if value not in tuple(MigrationType):
        raise InvalidParameterValueException(
            f"MigrationType {value!r} is not valid; valid values: {', '.join(MigrationType)}."
        )
    return str(value)


def _filtered(
    items: list[Any],
    filters: Any,
    fields: dict[str, Callable[[Any], list[str]]],
    id_filters: Sequence[str] = (),
    what: str | None = "resources",
) -> list[Any]:
    """Apply DMS Filters (names ANDed, values ORed); no match with filters → ResourceNotFoundFault."""
    if not filters:
        return items
    for flt in filters:
        name = flt.get("Name")
        if name not in fields:
            raise InvalidParameterValueException(
                f"The filter name {name!r} is not valid here; valid filter names: "
                f"{', '.join(fields)}."
            )
        values = [str(v) for v in flt.get("Values") or []]
        if name in id_filters:
            for value in values:
                validate_identifier(f"Filter: {name}", value)
        items = [item for item in items if set(fields[name](item)) & set(values)]
    if not items and what is not None:
        raise ResourceNotFoundFault(f"No {what} found matching the given filters.")
    return items


def _paginate(
    items: list[Any], params: dict[str, Any], maximum: int = 100
) -> tuple[list[Any], str | None]:
    max_records = params.get("MaxRecords")
    limit = 100 if max_records is None else int(max_records)
    if max_records is not None and not 20 <= limit <= maximum:
        raise InvalidParameterValueException(
            f"MaxRecords must be between 20 and {maximum}; got {max_records}."
        )
    offset = 0
    marker = params.get("Marker")
    if marker:
        try:
            offset = int(base64.b64decode(str(marker)).decode().removeprefix("offset:"))
        except ValueError as exc:
            raise InvalidParameterValueException(f"Marker {marker!r} is not valid.") from exc
    page = items[offset : offset + limit]
    more = offset + limit < len(items)
    next_marker = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else None
    return page, next_marker


def _with_marker(body: dict[str, Any], marker: str | None) -> dict[str, Any]:
    if marker is not None:
        body["Marker"] = marker
    return body
