"""The job's configuration: a JSON file plus the environment / ``.env`` (pydantic-settings).

The seed format works unchanged::

    {"dms_task_name": "postgres-migration-test", "s3_bucket_name": "postgres-repo",
     "table_mappings": [{"schema_name": "bookings", "table_name": "tickets"}],
     "migration_type": "full-load"}

with the ARNs in the environment (``DMS_SOURCE_ENDPOINT_ARN`` or ``SOURCE_ENDPOINT_ARN``, and the
same for ``TARGET_ENDPOINT_ARN`` and ``REPLICATION_INSTANCE_ARN``). Every other key maps 1:1 to an
environment variable named ``DMS_`` + the key in upper case (``DMS_POLL_INTERVAL_SECONDS``).
Precedence, highest first: values passed in code (flow parameters), environment, ``.env``, the file.

Everything is validated here, before any AWS call; ``ConfigError`` names each bad field, the value
given and what is valid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dms_spec.serverless import CAPACITY_UNITS
from dms_spec.status import MigrationType
from dms_spec.table_mappings import TableMappingsError, parse_table_mappings
from flows.exceptions import ConfigError

_ARN = re.compile(r"^arn:aws[a-z-]*:dms:[a-z0-9-]+:\d{12}:(?P<kind>[a-z]+):[A-Za-z0-9-]+$")
_IDENTIFIER = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,254}(?<!-)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class TableSelection(BaseModel):
    """One ``{schema_name, table_name}`` entry; DMS wildcards (``%``, ``_``, ``[...]``) allowed."""

    model_config = ConfigDict(extra="forbid")

    schema_name: str = Field(min_length=1, description="Source schema (wildcards allowed).")
    table_name: str = Field(min_length=1, description="Source table (wildcards allowed).")


class ComputeConfig(BaseModel):
    """DMS Serverless capacity and placement: the ``ComputeConfig`` of CreateReplicationConfig,
    with DMS's member names."""

    model_config = ConfigDict(extra="forbid")

    MaxCapacityUnits: int = Field(description="The most DMS capacity units (DCU) to provision.")
    MinCapacityUnits: int | None = Field(
        default=None, description="The fewest DCU (autoscaling's floor)."
    )
    MultiAZ: bool | None = None
    ReplicationSubnetGroupId: str | None = None
    VpcSecurityGroupIds: list[str] | None = None
    AvailabilityZone: str | None = None
    KmsKeyId: str | None = None
    PreferredMaintenanceWindow: str | None = None
    DnsNameServers: str | None = None

    @field_validator("MaxCapacityUnits", "MinCapacityUnits")
    @classmethod
    def _units(cls, value: int | None) -> int | None:
        if value is not None and value not in CAPACITY_UNITS:
            raise ValueError(f"must be one of {', '.join(map(str, CAPACITY_UNITS))} (DCU)")
        return value

    @model_validator(mode="after")
    def _range(self) -> ComputeConfig:
        if self.MinCapacityUnits is not None and self.MinCapacityUnits > self.MaxCapacityUnits:
            raise ValueError(
                f"MinCapacityUnits ({self.MinCapacityUnits}) cannot exceed MaxCapacityUnits "
                f"({self.MaxCapacityUnits})"
            )
        return self

    def document(self) -> dict[str, Any]:
        """The ComputeConfig sent to DMS (members not given are left to DMS)."""
        return self.model_dump(exclude_none=True)


class LakeTableConfig(BaseModel):
    """How one source table becomes an Iceberg table (``lake_tables``, keyed ``schema.table``)."""

    model_config = ConfigDict(extra="forbid")

    key: list[str] = Field(
        default_factory=list,
        description="The columns that identify a row (DMS does not write keys); empty: the table "
        "has none (see lake_without_key).",
    )
    column_types: dict[str, str] = Field(
        default_factory=dict,
        description="Iceberg types by column (long, decimal(38,10), timestamptz, ...) for CSV "
        "files; without AddColumnName every column, in order.",
    )
    without_key: Literal["refuse", "append"] | None = Field(
        default=None, description="Overrides lake_without_key for this table."
    )


def _arn_field(name: str, kind: str, description: str) -> Any:
    upper = name.upper()
    return Field(
        default=None,
        validate_default=True,
        validation_alias=AliasChoices(name, f"DMS_{upper}", upper),
        description=f"{description} (env DMS_{upper} or {upper}; an ARN of type {kind}).",
    )


class DmsIngestionConfig(BaseSettings):
    """Everything one ingestion job needs. See the module docstring for sources and precedence."""

    model_config = SettingsConfigDict(
        env_prefix="DMS_",
        env_file=".env",
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
    )

    dms_task_name: str = Field(
        validation_alias=AliasChoices("dms_task_name", "DMS_TASK_NAME"),
        description="ReplicationTaskIdentifier: letters, digits and hyphens, starting with a letter.",
    )
    s3_bucket_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("s3_bucket_name", "DMS_S3_BUCKET_NAME"),
        description="The bucket the target endpoint writes to. Optional: the flow reads it from "
        "the endpoint; when given, it must match (else nothing starts).",
    )
    table_mappings: list[TableSelection] = Field(
        default_factory=list,
        description="Tables to include, as {schema_name, table_name}; DMS wildcards allowed.",
    )
    table_mapping_rules: list[dict[str, Any]] | None = Field(
        default=None,
        description="Raw DMS rules (selection, exclude, filters, transformations), appended after "
        "the rules made from table_mappings.",
    )
    table_mappings_file: Path | None = Field(
        default=None, description='A DMS table-mappings JSON document ({"rules": [...]}) to use.'
    )
    migration_type: MigrationType = Field(
        default=MigrationType.FULL_LOAD, description="full-load, cdc or full-load-and-cdc."
    )
    source_endpoint_arn: str | None = _arn_field(
        "source_endpoint_arn", "endpoint", "Source endpoint"
    )
    target_endpoint_arn: str | None = _arn_field(
        "target_endpoint_arn", "endpoint", "Target endpoint"
    )
    replication_instance_arn: str | None = _arn_field(
        "replication_instance_arn", "rep", "Replication instance (not with compute_config)"
    )
    compute_config: ComputeConfig | None = Field(
        default=None,
        description="Run DMS Serverless: a replication config named dms_task_name with this "
        "ComputeConfig (MaxCapacityUnits, MinCapacityUnits, MultiAZ, ReplicationSubnetGroupId, "
        "VpcSecurityGroupIds, ...) instead of a task on replication_instance_arn.",
    )
    replication_task_settings: dict[str, Any] | None = Field(
        default=None, description="ReplicationTaskSettings overrides (merged into DMS's defaults)."
    )
    replication_task_settings_file: Path | None = Field(
        default=None, description="A JSON file of ReplicationTaskSettings overrides."
    )
    poll_interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="Seconds between DMS status polls."
    )
    timeout_seconds: float = Field(
        default=6 * 3600, gt=0, description="Give up (and fail) after this long without finishing."
    )
    rerun_start_type: Literal["reload-target", "resume-processing"] = Field(
        default="reload-target",
        description="How to start a task that has run before: reload everything or resume.",
    )
    if_running: Literal["fail", "attach"] = Field(
        default="fail",
        description="When the task is already running: fail, or attach and monitor it.",
    )
    delete_task_after_success: bool = Field(
        default=False, description="Delete the replication task once it finished successfully."
    )
    stop_task_on_cancel: bool = Field(
        default=True, description="Stop the DMS task when the flow run is cancelled."
    )
    reload_errored_tables: int = Field(
        default=0, ge=0, le=10, description="ReloadTables attempts for tables in 'Table error'."
    )
    verify_s3: bool = Field(
        default=True,
        description="Count the rows of each completed table's LOAD objects in S3 and fail the "
        "run when they differ from DMS's FullLoadRows.",
    )
    verify_s3_concurrency: int = Field(
        default=8, ge=1, le=64, description="Tables reconciled at once (each in a worker thread)."
    )
    s3_bucket_folder: str | None = Field(
        default=None,
        description="Not needed (the flow reads BucketFolder from the target endpoint); when "
        "given, it must match the endpoint's.",
    )
    cdc_monitor_seconds: float | None = Field(
        default=None, gt=0, description="For cdc tasks: how long to monitor before returning."
    )
    stop_after_full_load: bool = Field(
        default=False,
        description="For full-load-and-cdc: stop the task once the full load is complete.",
    )
    preflight: Literal["off", "warn", "fail"] = Field(
        default="warn",
        description="Before starting a task, run a DMS premigration assessment and publish its "
        "findings: off, warn (report and go on), or fail (start nothing when one fails).",
    )
    preflight_role_arn: str | None = Field(
        default=None,
        description="The role DMS assumes to write the assessment results (default: the target "
        "endpoint's ServiceAccessRoleArn).",
    )
    preflight_bucket: str | None = Field(
        default=None,
        description="The bucket for the assessment results (default: the target endpoint's).",
    )
    preflight_folder: str = Field(
        default="dms-assessments", description="The folder of that bucket for the results."
    )
    preflight_timeout_seconds: float = Field(
        default=600, gt=0, description="How long to wait for the assessment run."
    )
    max_cdc_latency_seconds: float = Field(
        default=300,
        gt=0,
        description="The CDC watch: above this CDCLatencySource or CDCLatencyTarget the "
        "replication is lagging (300 s: the threshold public DMS alarm modules use).",
    )
    cdc_watch_window_seconds: float = Field(
        default=600,
        gt=0,
        description="The CDC watch: how far back it reads the metrics; a running replication "
        "with no datapoint in it is stalled.",
    )
    cdc_metrics_period_seconds: int = Field(
        default=60,
        ge=1,
        description="The CDC watch: the metrics' period in GetMetricData (DMS publishes a "
        "datapoint a minute).",
    )
    on_recoverable_stop: Literal["alert", "resume"] = Field(
        default="alert",
        description="The CDC watch, on a replication stopped by a recoverable error: alert only, "
        "or also start it with resume-processing.",
    )
    lake_catalog: Literal["sql", "glue"] = Field(
        default="sql",
        description="The lake: the Iceberg catalog, sql (pyiceberg's SQL catalog in "
        "lake_catalog_uri) or glue (the AWS Glue Data Catalog).",
    )
    lake_catalog_uri: SecretStr | None = Field(
        default=None,
        description="The lake: the SQL catalog's database, a SQLAlchemy URL "
        "(postgresql+psycopg2://user:password@host/db, or sqlite:///path); kept secret.",
    )
    lake_catalog_name: str = Field(default="dms", description="The lake: the catalog's name.")
    lake_warehouse: str | None = Field(
        default=None,
        description="The lake: where the Iceberg tables' files go, s3://bucket/prefix (default: "
        "s3://<the target endpoint's bucket>/iceberg).",
    )
    lake_namespace: str | None = Field(
        default=None,
        description="The lake: the namespace (Glue database) of every table (default: the "
        "source schema's name).",
    )
    lake_tables: dict[str, LakeTableConfig] = Field(
        default_factory=dict,
        description="The lake: per source table (schema.table), its key and CSV column types.",
    )
    lake_without_key: Literal["refuse", "append"] = Field(
        default="refuse",
        description="The lake: a table with no key in lake_tables is refused, or appended "
        "(every LOAD and CDC row, with its Op).",
    )
    lake_batch_files: int = Field(
        default=100, ge=1, description="The lake: CDC files applied per Iceberg commit."
    )
    lake_max_concurrent_tables: int = Field(
        default=4, ge=1, le=64, description="The lake: tables applied at once."
    )
    max_concurrent_table_flows: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Per-table subflows running at once (each start writes to the Prefect API).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        if _CONFIG_FILE.path is not None:
            sources.append(JsonConfigSettingsSource(settings_cls, json_file=_CONFIG_FILE.path))
        return tuple(sources)

    @field_validator("dms_task_name")
    @classmethod
    def _task_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(
                "must be 1-255 letters, digits or hyphens, start with a letter, not end with a "
                "hyphen and not contain two consecutive hyphens"
            )
        return value

    @field_validator("s3_bucket_name")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and (not _BUCKET.match(value) or ".." in value):
            raise ValueError(
                "must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.', '-'"
            )
        return value

    @field_validator("source_endpoint_arn", "target_endpoint_arn", "replication_instance_arn")
    @classmethod
    def _arn(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = str(info.field_name)
        kind = "rep" if name == "replication_instance_arn" else "endpoint"
        if value is None:
            if name == "replication_instance_arn":
                return value  # not needed for Serverless: checked with compute_config below
            raise ValueError(
                f"missing: set {name} in the config file or the environment "
                f"(DMS_{name.upper()} or {name.upper()})"
            )
        match = _ARN.match(value)
        if match is None:
            raise ValueError(f"not a DMS ARN (arn:aws:dms:<region>:<account>:{kind}:<id>)")
        if match.group("kind") != kind:
            raise ValueError(f"a DMS {match.group('kind')} ARN; expected a {kind} ARN")
        return value

    @model_validator(mode="after")
    def _check(self) -> DmsIngestionConfig:
        if self.compute_config is not None and self.replication_instance_arn is not None:
            raise ValueError(
                "compute_config runs DMS Serverless, which needs no replication instance, but "
                f"replication_instance_arn is set too ({self.replication_instance_arn}): remove "
                "one (check DMS_REPLICATION_INSTANCE_ARN / REPLICATION_INSTANCE_ARN in the "
                "environment and .env)"
            )
        if self.compute_config is None and self.replication_instance_arn is None:
            raise ValueError(
                "replication_instance_arn: missing: set it in the config file or the environment "
                "(DMS_REPLICATION_INSTANCE_ARN or REPLICATION_INSTANCE_ARN), or give "
                "compute_config to run DMS Serverless"
            )
        if self.source_endpoint_arn == self.target_endpoint_arn:
            raise ValueError("source_endpoint_arn and target_endpoint_arn are the same endpoint")
        seen: set[tuple[str, str]] = set()
        for table in self.table_mappings:
            key = (table.schema_name, table.table_name)
            if key in seen:
                raise ValueError(
                    f"table_mappings lists {table.schema_name}.{table.table_name} twice"
                )
            seen.add(key)
        self.table_mappings_document()  # raises on invalid rules
        self.task_settings_document()
        return self

    @property
    def serverless(self) -> bool:
        """Whether the job runs DMS Serverless (a replication config) rather than a task."""
        return self.compute_config is not None

    def table_mappings_document(self) -> str:
        """The TableMappings JSON sent to DMS, validated by DMS's document rules.

        Rules come from ``table_mappings_file`` if set, else from ``table_mappings`` (one include rule
        each, ids 1..n) followed by ``table_mapping_rules``.
        """
        if self.table_mappings_file is not None:
            document = _read_json("table_mappings_file", self.table_mappings_file)
        else:
            rules: list[dict[str, Any]] = [
                {
                    "rule-type": "selection",
                    "rule-id": str(index),
                    "rule-name": str(index),
                    "object-locator": {"schema-name": t.schema_name, "table-name": t.table_name},
                    "rule-action": "include",
                    "filters": [],
                }
                for index, t in enumerate(self.table_mappings, start=1)
            ]
            rules.extend(self.table_mapping_rules or [])
            if not rules:
                raise ValueError(
                    "no tables selected: give table_mappings (a list of {schema_name, table_name}), "
                    "table_mapping_rules or table_mappings_file"
                )
            document = {"rules": rules}
        text = json.dumps(document)
        try:
            parse_table_mappings(text)
        except TableMappingsError as exc:
            raise ValueError(str(exc)) from exc
        return text

    def task_settings_document(self) -> str | None:
        """The ReplicationTaskSettings JSON to send, or None to keep DMS's defaults."""
        settings: dict[str, Any] = {}
        if self.replication_task_settings_file is not None:
            settings = _read_json(
                "replication_task_settings_file", self.replication_task_settings_file
            )
        settings.update(self.replication_task_settings or {})
        return json.dumps(settings) if settings else None


def _read_json(field_name: str, path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{field_name} {str(path)!r}: {exc}") from exc


class _ConfigFile:
    """The file the next ``load_config`` reads (pydantic-settings takes sources per class)."""

    path: Path | None = None


_CONFIG_FILE = _ConfigFile()


def load_config(path: str | Path | None = None, **overrides: Any) -> DmsIngestionConfig:
    """Load and validate the job's configuration.

    Args:
        path: a JSON config file (the ``dms_config.json`` format), or None for env/.env only.
        **overrides: values that win over every other source (None values are ignored).

    Raises:
        ConfigError: the file is missing or not JSON, or a value is invalid; the message lists every
            problem with its field, the value given and what is valid.

    Example:
        >>> import os
        >>> os.environ.update(DMS_SOURCE_ENDPOINT_ARN="arn:aws:dms:us-east-1:123456789012:endpoint:S",
        ...     DMS_TARGET_ENDPOINT_ARN="arn:aws:dms:us-east-1:123456789012:endpoint:T",
        ...     DMS_REPLICATION_INSTANCE_ARN="arn:aws:dms:us-east-1:123456789012:rep:R")
        >>> load_config(dms_task_name="t", s3_bucket_name="bucket",
        ...             table_mappings=[{"schema_name": "bookings", "table_name": "%"}]).migration_type
        <MigrationType.FULL_LOAD: 'full-load'>
    """
    file_path = Path(path) if path is not None else None
    if file_path is not None:
        if not file_path.is_file():
            raise ConfigError(f"Config file {str(file_path)!r} does not exist.")
        try:
            content = json.loads(file_path.read_text())
        except ValueError as exc:
            raise ConfigError(f"Config file {str(file_path)!r} is not valid JSON: {exc}.") from exc
        if not isinstance(content, dict):
            raise ConfigError(f"Config file {str(file_path)!r} must hold a JSON object.")
    _CONFIG_FILE.path = file_path
    try:
        return DmsIngestionConfig(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file_path)) from None
    finally:
        _CONFIG_FILE.path = None


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" in {str(path)!r}" if path else ""
    lines = [f"Invalid DMS ingestion config{where}:"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "config"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            lines.append(f"- {field}: required, not given (config file or DMS_{field.upper()})")
        elif error["type"] == "extra_forbidden":
            valid = ", ".join(sorted(DmsIngestionConfig.model_fields))
            lines.append(f"- {field}: unknown key (value {error['input']!r}); valid keys: {valid}")
        elif field == "config":
            lines.append(f"- {message}")
        else:
            lines.append(f"- {field}: {message} (got {error.get('input')!r})")
    return "\n".join(lines)
