"""Faults the flow must ride through (issue: prove it holds). Each test says what must hold after."""

from __future__ import annotations

import pytest

from flows import dms_ingestion
from localdms.faults import FaultInjector
from tests.pipeline import read_objects

pytestmark = pytest.mark.integration


async def test_flow_completes_through_throttling_and_5xx_and_says_how_often_it_retried(
    job, localdms, s3
):
    """Afterwards: the ingestion succeeded, every table is in S3, and the report counts the
    retries (boto3's own and the flow's) that the injected faults caused."""
    localdms.server.faults = FaultInjector.parse("throttle=0.3,error=0.15,seed=11")

    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    injected = localdms.server.faults.injected
    assert injected["throttle"] > 0
    assert injected["error"] > 0
    assert report.succeeded, report.failure_message()
    assert report.sdk_retries + report.transient_errors > 0
    assert f"{report.sdk_retries} by boto3" in report.summary_markdown()
    keys = read_objects(s3, "postgres-repo")
    assert {"bookings/tickets/LOAD00000001.csv", "bookings/flights/LOAD00000001.csv"} <= set(keys)


def test_fault_spec_is_checked():
    with pytest.raises(ValueError, match="throttle=R"):
        FaultInjector.parse("slow=0.5")
    with pytest.raises(ValueError, match="add up to 1"):
        FaultInjector.parse("throttle=0.8,error=0.5")
    assert not FaultInjector.parse("").enabled
