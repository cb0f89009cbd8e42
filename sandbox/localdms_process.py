"""localdms as its own process, and provisioning a pipeline through the DMS API.

Used by the demo and the benchmarks, which want localdms as a separate service (its own CPU and
memory, as in production); tests embed it in a thread (``localdms.server.ThreadedLocalDms``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import StackStartError
from sandbox.ports import free_port, stop_process


class LocalDmsProcess:
    """``python -m localdms serve`` on a free loopback port, writing to the S3 at ``s3_url``."""

    def __init__(
        self,
        s3_url: str,
        transition_seconds: float = 1.0,
        log_level: str = "WARNING",
        metrics_period: float | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.s3_url = s3_url
        self.transition_seconds = transition_seconds
        self.log_level = log_level
        self.metrics_period = metrics_period
        """Seconds between CloudWatch publications (with ``AWS_ENDPOINT_URL_CLOUDWATCH`` set)."""
        self.state_dir = Path(tempfile.mkdtemp(prefix="localdms-"))
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> LocalDmsProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localdms", "serve", "--port", str(self.port),
             "--state-dir", str(self.state_dir), "--transition-seconds", str(self.transition_seconds),
             "--log-level", self.log_level,
             *(["--metrics-period", str(self.metrics_period)] if self.metrics_period else [])],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "AWS_ENDPOINT_URL_S3": self.s3_url},
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if "ready" not in line:
            self.stop()
            raise StackStartError(
                f"localdms did not start (its first line: {line!r}; its error is above). Fix what "
                "it names, or run `python -m localdms serve --port 0` to see it alone."
            )
        return self

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def kill(self) -> None:
        """SIGKILL the server (no clean shutdown), keeping its state for a restart with ``start``."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> LocalDmsProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class PipelineArns:
    """What the flow needs from the environment."""

    source_endpoint_arn: str
    target_endpoint_arn: str
    replication_instance_arn: str

    def environment(self) -> dict[str, str]:
        return {
            "DMS_SOURCE_ENDPOINT_ARN": self.source_endpoint_arn,
            "DMS_TARGET_ENDPOINT_ARN": self.target_endpoint_arn,
            "DMS_REPLICATION_INSTANCE_ARN": self.replication_instance_arn,
        }


def provision_pipeline(
    dms: Any,
    source_dsn: str,
    bucket: str,
    s3_settings: dict[str, Any] | None = None,
    fixed_arns: bool = False,
) -> PipelineArns:
    """Create a replication instance and PostgreSQL → S3 endpoints through the DMS API, wait until
    the instance is available and both connections test successfully; return the ARNs.

    With ``fixed_arns`` the resources get ResourceIdentifiers (``dms-ingestion-instance``,
    ``-source``, ``-target``), so their ARNs are known in advance (the Compose stack's ``.env``),
    and resources that already exist with those identifiers are reused, so a second run of the
    stack's setup changes nothing (their connections are tested again).
    """
    url = urllib.parse.urlsplit(source_dsn)

    def fixed(kind: str) -> dict[str, str]:
        return {"ResourceIdentifier": f"dms-ingestion-{kind}"} if fixed_arns else {}

    def existing(
        describe: str, key: str, filter_name: str, identifier: str, arn: str
    ) -> str | None:
        if not fixed_arns:
            return None
        try:
            found = getattr(dms, describe)(Filters=[{"Name": filter_name, "Values": [identifier]}])
        except dms.exceptions.ResourceNotFoundFault:
            return None
        print(f"reusing {identifier} ({found[key][0][arn]})", file=sys.stderr)
        return str(found[key][0][arn])

    instance = existing(
        "describe_replication_instances", "ReplicationInstances", "replication-instance-id",
        "local-instance", "ReplicationInstanceArn",
    ) or dms.create_replication_instance(
        ReplicationInstanceIdentifier="local-instance",
        ReplicationInstanceClass="dms.t3.medium",
        **fixed("instance"),
    )["ReplicationInstance"]["ReplicationInstanceArn"]  # fmt: skip
    source = existing(
        "describe_endpoints", "Endpoints", "endpoint-id", "local-postgres", "EndpointArn"
    ) or dms.create_endpoint(
        EndpointIdentifier="local-postgres", EndpointType="source", EngineName="postgres",
        ServerName=url.hostname, Port=url.port or 5432, DatabaseName=urllib.parse.unquote(url.path.lstrip("/")) or "postgres",
        Username=urllib.parse.unquote(url.username or ""), Password=urllib.parse.unquote(url.password or ""),
        **fixed("source"),
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    target = existing(
        "describe_endpoints", "Endpoints", "endpoint-id", "local-s3", "EndpointArn"
    ) or dms.create_endpoint(
        EndpointIdentifier="local-s3", EndpointType="target", EngineName="s3",
        S3Settings={"BucketName": bucket, "ServiceAccessRoleArn": "arn:aws:iam::123456789012:role/dms-s3",
                    **(s3_settings or {})},
        **fixed("target"),
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    waiter_config = {"Delay": 0.5, "MaxAttempts": 120}
    dms.get_waiter("replication_instance_available").wait(
        Filters=[{"Name": "replication-instance-arn", "Values": [instance]}],
        WaiterConfig=waiter_config,
    )
    for endpoint in (source, target):
        dms.test_connection(ReplicationInstanceArn=instance, EndpointArn=endpoint)
        dms.get_waiter("test_connection_succeeds").wait(
            Filters=[{"Name": "endpoint-arn", "Values": [endpoint]}], WaiterConfig=waiter_config
        )
    return PipelineArns(source, target, instance)


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.localdms_process [--source-dsn URL] --bucket NAME``: provision with fixed ARNs.

    Uses the standard AWS configuration (``AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE`` → localdms,
    ``AWS_ENDPOINT_URL_S3`` → the store the bucket is made in).
    Safe to run again (the Compose stack's setup service runs it on every ``up``): existing
    resources are reused.
    """
    import argparse

    import boto3

    from sandbox.postgres import dsn_from_libpq_environment
    from sandbox.s3 import ensure_bucket

    parser = argparse.ArgumentParser(prog="python -m sandbox.localdms_process")
    parser.add_argument(
        "--source-dsn",
        help="PostgreSQL URL of the source (default: from PGHOST, PGPORT, PGUSER, PGPASSWORD, "
        "PGDATABASE)",
    )
    parser.add_argument("--bucket", required=True, help="the target bucket (created if missing)")
    args = parser.parse_args(argv)
    source_dsn = args.source_dsn or dsn_from_libpq_environment()
    if source_dsn is None:
        parser.error("give --source-dsn, or set PGHOST (with PGUSER, PGPASSWORD, PGDATABASE)")
    ensure_bucket(boto3.client("s3"), args.bucket)
    arns = provision_pipeline(boto3.client("dms"), source_dsn, args.bucket, fixed_arns=True)
    for name, value in arns.environment().items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
