"""``make serve`` and the deployment path it sets up: prefect.yaml → ``prefect deploy`` → a
process worker → ``prefect deployment run dms-ingestion/local --watch``, checked through the API."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "aircrafts_data", "airports_data", "boarding_passes", "bookings", "flights", "seats",
    "ticket_flights", "tickets",
}  # fmt: skip


async def test_make_serve_runs_the_local_deployment_to_completion(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    output = tmp_path / "serve.log"
    with output.open("w") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "demo.serve"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C stops everything" not in output.read_text():
            assert serve.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(1)
        api_url = re.search(r"PREFECT_API_URL=(\S+)", output.read_text()).group(1)  # type: ignore[union-attr]

        run = subprocess.run(
            [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "dms-ingestion/local", "--watch"],
            env={**env, "PREFECT_API_URL": api_url}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, (
            run.stdout[-2000:] + run.stderr[-2000:] + output.read_text()[-2000:]
        )

        async with PrefectClient(api=api_url) as client:
            deployments = {d.name: d for d in await client.read_deployments()}
            assert set(deployments) == {"local", "aws"}
            local = deployments["local"]
            assert local.parameters["aws_credentials_block"] == "dms-local"
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[local.id]))
            )
            assert [r.state.type.value for r in runs] == ["COMPLETED"]
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[runs[0].id])
                )
            )
            assert {c.name for c in children} == {f"bookings.{table}" for table in TABLES}
            assert all(c.state.is_completed() for c in children)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[runs[0].id])
                )
            )
            report = next(a for a in artifacts if a.key == "dms-postgres-migration-test-report")
            assert "## DMS ingestion succeeded" in report.data
            assert "dms-postgres-migration-test-tables" in {a.key for a in artifacts}
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(120)
    assert serve.returncode == 0, output.read_text()[-3000:]
    for url in set(re.findall(r"http://127\.0\.0\.1:\d+", output.read_text())):
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=2)
