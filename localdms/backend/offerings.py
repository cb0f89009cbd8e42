"""What clients ask on startup and in data sources: DescribeOrderableReplicationInstances,
DescribeEngineVersions, DescribeEndpointTypes, DescribeEndpointSettings,
DescribeAccountAttributes.

The answers describe localdms, not all of DMS: the endpoint types are the ones it runs
(PostgreSQL sources, S3 targets); the endpoint settings are DMS's for those engines, with the
defaults ``localdms.endpoint_settings.S3Target`` applies (read from it, not repeated here); the
quotas are the guide's (CHAP_Limits) with what this server holds counted as used.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from localdms.backend.base import BackendBase
from localdms.backend.queries import filtered, page_body
from localdms.backend.resources import DEFAULT_ENGINE_VERSION
from localdms.backend.shapes import Filter
from localdms.endpoint_settings import POSTGRES_ENGINES, S3_ENGINES, S3Target
from localdms.exceptions import InvalidParameterValueException

ENGINE_VERSIONS = ("3.5.1", "3.5.2", "3.5.3", "3.5.4")
"""Replication engine versions offered; new instances get ``DEFAULT_ENGINE_VERSION``."""

_SIZES = {
    "t3": ("micro", "small", "medium", "large"),
    "c5": ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge"),
    "r5": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge"),
}
INSTANCE_CLASSES = tuple(f"dms.{family}.{size}" for family, sizes in _SIZES.items()
                         for size in sizes)  # fmt: skip

QUOTAS = {
    "ReplicationInstances": 60,
    "AllocatedStorage": 30_000,
    "Endpoints": 1_000,
    "ReplicationTasks": 600,
    "ReplicationSubnetGroups": 60,
    "SubnetsPerReplicationSubnetGroup": 60,
    "EventSubscriptions": 60,
}
"""The account quotas of the AWS DMS User Guide (CHAP_Limits), by DescribeAccountAttributes name."""

_ENGINE_DISPLAY = {"postgres": "PostgreSQL", "aurora-postgresql": "Aurora PostgreSQL",
                   "s3": "Amazon S3"}  # fmt: skip

_S3_SETTINGS: tuple[tuple[str, str, Any], ...] = (
    # (ExtraConnectionAttributes name, type, enum values or (min, max) or None)
    ("addColumnName", "boolean", None),
    ("bucketFolder", "string", None),
    ("bucketName", "string", None),
    ("cdcInsertsAndUpdates", "boolean", None),
    ("cdcInsertsOnly", "boolean", None),
    ("cdcMaxBatchInterval", "integer", (1, 3600)),
    ("cdcMinFileSize", "integer", (1, 1_048_576)),
    ("compressionType", "enum", ("none", "gzip")),
    ("csvDelimiter", "string", None),
    ("csvNullValue", "string", None),
    ("csvRowDelimiter", "string", None),
    ("dataFormat", "enum", ("csv", "parquet")),
    ("dataPageSize", "integer", (1024, 1_073_741_824)),
    ("datePartitionDelimiter", "enum", ("SLASH", "DASH", "UNDERSCORE", "NONE")),
    ("datePartitionEnabled", "boolean", None),
    ("datePartitionSequence", "enum", ("YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY")),
    ("datePartitionTimezone", "string", None),
    ("dictPageSizeLimit", "integer", (1024, 1_073_741_824)),
    ("enableStatistics", "boolean", None),
    ("encodingType", "enum", ("rle-dictionary", "plain", "plain-dictionary")),
    ("includeOpForFullLoad", "boolean", None),
    ("maxFileSize", "integer", (1, 1_048_576)),
    ("parquetTimestampInMillisecond", "boolean", None),
    ("parquetVersion", "enum", ("parquet-1-0", "parquet-2-0")),
    ("rowGroupLength", "integer", (1, 100_000_000)),
    ("timestampColumnName", "string", None),
    ("serviceAccessRoleArn", "string", None),
)
_S3_FIELDS = {  # the S3Target field holding each setting's default, where names differ
    "compressionType": "compression",
    "maxFileSize": "max_file_size_kb",
    "cdcMinFileSize": "cdc_min_file_size_kb",
    "dataPageSize": "parquet_data_page_size",
    "dictPageSizeLimit": "parquet_dict_page_size_limit",
    "rowGroupLength": "parquet_row_group_length",
    "enableStatistics": "parquet_enable_statistics",
    "encodingType": "parquet_encoding",
    "parquetTimestampInMillisecond": "parquet_timestamp_in_millisecond",
}
_UNITS = {"maxFileSize": "KB", "cdcMinFileSize": "KB", "cdcMaxBatchInterval": "seconds",
          "dataPageSize": "bytes", "dictPageSizeLimit": "bytes"}  # fmt: skip

_POSTGRES_SETTINGS: tuple[tuple[str, str, Any, str | None], ...] = (
    # (name, type, enum values, the guide's default)
    ("afterConnectScript", "string", None, None),
    ("captureDdls", "boolean", None, "true"),
    ("ddlArtifactsSchema", "string", None, "public"),
    ("executeTimeout", "integer", None, "60"),
    ("failTasksOnLobTruncation", "boolean", None, "false"),
    ("heartbeatEnable", "boolean", None, "false"),
    ("heartbeatFrequency", "integer", None, "5"),
    ("heartbeatSchema", "string", None, "public"),
    ("maxFileSize", "integer", None, "32768"),
    ("pluginName", "enum", ("no-preference", "test-decoding", "pglogical"), None),
    ("slotName", "string", None, None),
    ("secretsManagerAccessRoleArn", "string", None, None),
    ("secretsManagerSecretId", "string", None, None),
)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _s3_default(name: str) -> str | None:
    fields = {f.name: f for f in dataclasses.fields(S3Target)}
    field = fields.get(_S3_FIELDS.get(name, _snake(name)))
    if field is None or field.default is dataclasses.MISSING:
        return None
    value = field.default
    if isinstance(value, bool):
        return str(value).lower()
    return {"\n": "\\n"}.get(str(value), str(value)) or None


def endpoint_settings(engine: str) -> list[dict[str, Any]]:
    """DescribeEndpointSettings's list for an engine localdms runs.

    Example:
        >>> [s for s in endpoint_settings("s3") if s["Name"] == "maxFileSize"][0]["DefaultValue"]
        '1048576'
    """
    settings: list[dict[str, Any]] = []
    if engine in S3_ENGINES:
        for name, kind, limits in _S3_SETTINGS:
            entry: dict[str, Any] = {"Name": name, "Type": kind, "Applicability": "target"}
            if kind == "enum":
                entry["EnumValues"] = list(limits)
            elif kind == "integer" and limits:
                entry["IntValueMin"], entry["IntValueMax"] = limits
            if name in _UNITS:
                entry["Units"] = _UNITS[name]
            default = _s3_default(name)
            if default is not None:
                entry["DefaultValue"] = default
            settings.append(entry)
    elif engine in POSTGRES_ENGINES:
        for name, kind, values, default in _POSTGRES_SETTINGS:
            entry = {"Name": name, "Type": kind, "Applicability": "source"}
            if values:
                entry["EnumValues"] = list(values)
            if default is not None:
                entry["DefaultValue"] = default
            if name.startswith("secretsManager"):
                entry["Sensitive"] = False
            settings.append(entry)
    else:
        raise InvalidParameterValueException(
            f"localdms runs PostgreSQL sources and S3 targets; EngineName {engine!r} is not one "
            f"of {', '.join(POSTGRES_ENGINES + S3_ENGINES)}."
        )
    return settings


class OfferingsBackend(BackendBase):
    """The catalogue operations: what can be ordered, what engines there are, the quotas."""

    def describe_orderable_replication_instances(
        self, *, max_records: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        """DescribeOrderableReplicationInstances: every class at the default engine version."""
        zones = [f"{self.region}{letter}" for letter in "abc"]

        def render(instance_class: str) -> dict[str, Any]:
            storage = 50 if instance_class.startswith("dms.t3.") else 100
            return {
                "EngineVersion": DEFAULT_ENGINE_VERSION,
                "ReplicationInstanceClass": instance_class,
                "StorageType": "gp2",
                "MinAllocatedStorage": 5,
                "MaxAllocatedStorage": 6144,
                "DefaultAllocatedStorage": storage,
                "IncludedAllocatedStorage": storage,
                "AvailabilityZones": zones,
                "ReleaseStatus": "prod",
            }

        return page_body(
            "OrderableReplicationInstances", list(INSTANCE_CLASSES), render, max_records, marker
        )

    def describe_engine_versions(
        self, *, max_records: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        """DescribeEngineVersions: each version, with the later ones as its upgrades."""
        return page_body(
            "EngineVersions",
            list(ENGINE_VERSIONS),
            lambda version: {
                "Version": version,
                "ReleaseStatus": "prod",
                "AvailableUpgrades": list(ENGINE_VERSIONS[ENGINE_VERSIONS.index(version) + 1 :]),
            },
            max_records,
            marker,
        )

    def describe_endpoint_types(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeEndpointTypes: the engines localdms runs, with filters ``engine-name`` and
        ``endpoint-type``."""
        types = [(engine, "source") for engine in ("postgres", "aurora-postgresql")]
        types.append(("s3", "target"))
        items = filtered(
            types,
            filters,
            {"engine-name": lambda t: [t[0]], "endpoint-type": lambda t: [t[1], t[1].upper()]},
            what=None,
        )
        return page_body(
            "SupportedEndpointTypes",
            items,
            lambda t: {
                "EngineName": t[0],
                "SupportsCDC": True,
                "EndpointType": t[1],
                "EngineDisplayName": _ENGINE_DISPLAY[t[0]],
            },
            max_records,
            marker,
        )

    def describe_endpoint_settings(
        self, *, engine_name: str, max_records: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        """DescribeEndpointSettings for ``postgres``/``aurora-postgresql`` or ``s3``."""
        return page_body(
            "EndpointSettings",
            endpoint_settings(engine_name.lower()),
            lambda setting: setting,
            max_records,
            marker,
        )

    def describe_account_attributes(self) -> dict[str, Any]:
        """DescribeAccountAttributes: the guide's quotas, with this server's resources as used."""
        with self.lock:
            self._advance()
            used = {
                "ReplicationInstances": len(self.instances),
                "AllocatedStorage": sum(i.allocated_storage for i in self.instances.values()),
                "Endpoints": len(self.endpoints),
                "ReplicationTasks": len(self.tasks),
                "ReplicationSubnetGroups": len(self.subnet_groups),
                "SubnetsPerReplicationSubnetGroup": max(
                    (len(g.subnets) for g in self.subnet_groups.values()), default=0
                ),
                "EventSubscriptions": len(self.event_subscriptions),
            }
            digest = hashlib.sha256(f"{self.account_id}:{self.region}".encode()).hexdigest()
            return {
                "AccountQuotas": [
                    {"AccountQuotaName": name, "Used": used[name], "Max": maximum}
                    for name, maximum in QUOTAS.items()
                ],
                "UniqueAccountIdentifier": digest[:12],
            }
