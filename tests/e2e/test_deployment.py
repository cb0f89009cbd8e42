"""``make serve`` and the deployment path it sets up: prefect.yaml → ``prefect deploy`` → a
process worker → ``prefect deployment run dms-ingestion/local --watch``, checked through the API."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)

from tests.docs_blocks import block

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Where the screenshots of the Prefect UI land (CI keeps this folder; docs/getting-started.md names it).
SCREENSHOTS = ROOT / "artifacts" / "prefect-ui"
# Debian's chromium (`.ci/run` installs it); DMS_TEST_CHROMIUM points at another build.
CHROMIUM = os.environ.get("DMS_TEST_CHROMIUM", "/usr/bin/chromium")
TABLES = {
    "aircrafts_data", "airports_data", "boarding_passes", "bookings", "flights", "seats",
    "ticket_flights", "tickets",
}  # fmt: skip


@pytest.mark.timeout(600)  # ~90 s: the stack, a worker, a deployment run and Chromium
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
        health = re.search(r"health (http://\S+/health)", output.read_text()).group(1)  # type: ignore[union-attr]

        # The documented command (docs/running/deployment.md), with the URL serve printed.
        documented = block("make-serve").commands()
        assert documented[0] == "make serve"  # what runs `python -m demo.serve`, as above
        variable, *command = shlex.split(documented[1].replace("<printed>", api_url))
        assert variable == f"PREFECT_API_URL={api_url}"
        assert command[:2] == ["prefect", "deployment"]
        run = subprocess.run(
            [str(Path(sys.executable).parent / command[0]), *command[1:]],
            env={**env, "PREFECT_API_URL": api_url}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, (
            run.stdout[-2000:] + run.stderr[-2000:] + output.read_text()[-2000:]
        )
        with urllib.request.urlopen(health, timeout=5) as answer:  # the worker's own probe
            assert answer.status == 200

        async with PrefectClient(api=api_url) as client:
            deployments = {d.name: d for d in await client.read_deployments()}
            assert set(deployments) == {"local", "aws", "cdc-watch-local"}
            watch = deployments["cdc-watch-local"]  # every 5 minutes, once its schedule is on
            assert [(s.schedule.interval.total_seconds(), s.active) for s in watch.schedules] == [
                (300, False)
            ]
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

        await check_flow_run_page(api_url.removesuffix("/api"), str(runs[0].id))
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(120)
    assert serve.returncode == 0, output.read_text()[-3000:]
    for url in set(re.findall(r"http://127\.0\.0\.1:\d+", output.read_text())):
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=2)


async def check_flow_run_page(ui_url: str, flow_run_id: str) -> None:
    """Open the flow run in the Prefect UI in headless Chromium: the subflow tab lists one run per
    table, the artifacts tab shows the report, and the report renders. Screenshots go to SCREENSHOTS."""
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set DMS_TEST_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        # SwiftShader draws the run graph (WebGL) without a GPU.
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            await page.goto(f"{ui_url}/runs/flow-run/{flow_run_id}")

            await page.get_by_text("Subflow Runs", exact=True).click()
            await page.get_by_text("8 Flow runs").wait_for()
            for table in sorted(TABLES):
                await page.get_by_text(f"bookings.{table}", exact=True).wait_for()
            await page.screenshot(path=SCREENSHOTS / "flow-run-subflows.png", full_page=True)

            await page.get_by_text("Artifacts", exact=True).click()
            report = page.get_by_text("dms-postgres-migration-test-report", exact=True)
            await page.get_by_text("dms-postgres-migration-test-tables", exact=True).wait_for()
            await page.screenshot(path=SCREENSHOTS / "flow-run-artifacts.png", full_page=True)

            await report.click()
            await page.get_by_role("heading", name="DMS ingestion succeeded").wait_for()
            await page.get_by_text("Tables: 8 (8 completed, 0 errored)").wait_for()
            await page.screenshot(path=SCREENSHOTS / "report.png", full_page=True)
        finally:
            await browser.close()
