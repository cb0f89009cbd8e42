"""The S3 target as DMS knows it: read from the target endpoint, never from a second copy.

The flow describes the task's target endpoint before it starts anything and takes the bucket,
BucketFolder, DataFormat, CompressionType, AddColumnName and the CSV delimiters from it. Config
values that repeat them (``s3_bucket_name``, ``s3_bucket_folder``) are only checked against it:
when they disagree the run stops before anything is created or started, naming both values.

Example:
    >>> target = TargetEndpoint.from_endpoint({
    ...     "EndpointArn": "arn:aws:dms:us-east-1:123456789012:endpoint:T", "EngineName": "s3",
    ...     "S3Settings": {"BucketName": "chinook-lake", "BucketFolder": "raw", "CsvRowDelimiter": "\\\\n"}})
    >>> target.url("public", "album")
    's3://chinook-lake/raw/public/album/'
    >>> target.disagreements(s3_bucket_name="chinook-lake", s3_bucket_folder=None)
    []
    >>> target.disagreements(s3_bucket_name="other", s3_bucket_folder="")[0][:60]
    "s3_bucket_name is 'other', but the target endpoint writes to"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dms_spec.endpoint_settings import merged_settings
from dms_spec.s3_target import S3SettingsError, S3Target


@dataclass(frozen=True)
class TargetEndpoint:
    """Where and how DMS writes a target endpoint's files: its S3Settings as ``dms_spec.s3_target``
    reads them (the parser localdms writes by)."""

    endpoint_arn: str
    settings: S3Target
    service_access_role_arn: str | None = None
    """The role DMS uses to write to the bucket (the preflight's default assessment role)."""

    @classmethod
    def from_endpoint(cls, endpoint: dict[str, Any]) -> TargetEndpoint:
        """Build from a DescribeEndpoints item.

        Raises:
            ValueError: the endpoint is not an S3 endpoint, has no BucketName, or holds a value
                DMS does not take.
        """
        arn = str(endpoint.get("EndpointArn", ""))
        engine = str(endpoint.get("EngineName", "")).lower()
        if engine != "s3":
            raise ValueError(
                f"The target endpoint {arn} is a {engine or 'unknown'!r} endpoint; dms-ingestion "
                "loads into S3: give the ARN of an S3 target endpoint (EngineName s3)."
            )
        settings = merged_settings(endpoint, "S3Settings")
        try:
            target = S3Target.from_settings(settings)
        except S3SettingsError as exc:
            if exc.setting == "BucketName":
                raise ValueError(
                    f"The target endpoint {arn} has no S3Settings.BucketName: set it (aws dms "
                    f"modify-endpoint --endpoint-arn {arn} --s3-settings BucketName=<bucket>) or "
                    "point target_endpoint_arn at an S3 endpoint that has one."
                ) from None
            raise ValueError(f"The target endpoint {arn}: {exc}") from None
        return cls(
            endpoint_arn=arn,
            settings=target,
            service_access_role_arn=settings.get("ServiceAccessRoleArn")
            or endpoint.get("ServiceAccessRoleArn"),
        )

    @classmethod
    def of(cls, endpoint_arn: str, **s3_settings: Any) -> TargetEndpoint:
        """An endpoint from S3Settings members (for benchmarks and tests).

        Example:
            >>> TargetEndpoint.of("arn", BucketName="b", BucketFolder="raw").url()
            's3://b/raw/'
        """
        return cls(endpoint_arn, S3Target.from_settings(s3_settings))

    @property
    def bucket(self) -> str:
        return self.settings.bucket_name

    @property
    def folder(self) -> str:
        """BucketFolder, slashes trimmed ("" for none)."""
        return self.settings.folder

    def table_prefix(self, schema: str, table: str) -> str:
        """``[BucketFolder/]schema/table/``, as DMS writes it (``dms_spec.s3_layout``)."""
        return self.settings.table_prefix(schema, table)

    def url(self, schema: str | None = None, table: str | None = None) -> str:
        """``s3://bucket/[folder/]`` or, with a table, that table's folder."""
        if schema is None or table is None:
            return f"s3://{self.bucket}/{self.folder + '/' if self.folder else ''}"
        return f"s3://{self.bucket}/{self.table_prefix(schema, table)}"

    def disagreements(self, s3_bucket_name: str | None, s3_bucket_folder: str | None) -> list[str]:
        """What the config says that the endpoint contradicts, each with what to change."""
        problems: list[str] = []
        if s3_bucket_name is not None and s3_bucket_name != self.bucket:
            problems.append(
                f"s3_bucket_name is {s3_bucket_name!r}, but the target endpoint writes to bucket "
                f"{self.bucket!r} (S3Settings.BucketName of {self.endpoint_arn}). Set "
                f"s3_bucket_name to {self.bucket!r} or remove it (the flow reads the bucket from "
                "the endpoint), or point target_endpoint_arn at the endpoint you meant."
            )
        if s3_bucket_folder is not None and s3_bucket_folder.strip("/") != self.folder:
            problems.append(
                f"s3_bucket_folder is {s3_bucket_folder!r}, but the target endpoint's "
                f"BucketFolder is {self.folder!r}. Remove s3_bucket_folder (the flow reads the "
                "folder from the endpoint) or change the endpoint's BucketFolder."
            )
        return problems
