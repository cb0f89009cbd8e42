"""The deployment path: prefect.yaml → ``prefect deploy`` → a process worker → ``deployment run``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from demo.bookings import create_bookings
from tests.integration.test_flow import child_runs
from tests.pipeline import provision

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
TABLES = {
    "aircrafts_data", "airports_data", "boarding_passes", "bookings", "flights", "seats",
    "ticket_flights", "tickets",
}  # fmt: skip


def prefect(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PREFECT, "--no-prompt", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def worker_env(dms, s3, source_db, localdms, s3_server, prefect_api) -> dict[str, str]:
    create_bookings(source_db.dsn, "small")
    pipeline = provision(dms, s3, source_db, bucket="postgres-repo")
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "DMS_INGESTION_HOME": str(ROOT),
        "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE": localdms.url,
        "AWS_ENDPOINT_URL_S3": s3_server.url,
        "DMS_SOURCE_ENDPOINT_ARN": pipeline.source_arn,
        "DMS_TARGET_ENDPOINT_ARN": pipeline.target_arn,
        "DMS_REPLICATION_INSTANCE_ARN": pipeline.instance_arn,
    }


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    created = prefect(
        "work-pool", "create", "dms-process", "--type", "process", "--overwrite", env=worker_env
    )
    assert created.returncode == 0, created.stderr
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "dms-process"],
            cwd=ROOT,
            env=worker_env,
            stdout=log,
            stderr=log,
        )
    yield process
    for _ in range(2):  # a process worker forwards the first signal and stops on the second
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        process.kill()


async def test_deployment_run_completes_with_a_subflow_per_table(worker_env, worker, tmp_path):
    blocks = subprocess.run(
        [sys.executable, "-m", "blocks", "--profile", "local"],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
    )
    assert blocks.returncode == 0, blocks.stderr
    deployed = prefect("deploy", "--all", env=worker_env)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]

    run = prefect(
        "deployment", "run", "dms-ingestion/local", "--watch", env=worker_env, timeout=600
    )

    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:] + log[-3000:]
    async with get_client() as client:
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["local", "aws"]))
        )
        assert {d.name for d in deployments} == {"local", "aws"}
        local = next(d for d in deployments if d.name == "local")
        assert local.parameters["aws_credentials_block"] == "dms-local"
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id={"any_": [local.id]})
        )
        assert [r.state.type.value for r in runs] == ["COMPLETED"]
        children = await child_runs(runs[0].id)
        assert {c.name for c in children} == {f"bookings.{table}" for table in TABLES}
        artifacts = await client.read_artifacts()
        assert "dms-postgres-migration-test-report" in {
            a.key for a in artifacts if a.flow_run_id == runs[0].id
        }
