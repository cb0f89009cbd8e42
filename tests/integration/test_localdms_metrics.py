"""localdms's CloudWatch metrics, read back the way a dashboard or an alarm reads them: from
moto's CloudWatch, by DMS's names, units and dimensions (``localdms/metrics.py``)."""

from __future__ import annotations

import time

import boto3
import pytest

from localdms.server import ThreadedLocalDms
from tests.integration.test_localdms_cdc import (
    capturing_task,
    change_accounts,
    make_accounts,
    statistics,
    wait_for_sentinel,
)
from tests.pipeline import wait_for_status

pytestmark = pytest.mark.integration


def test_a_capturing_task_publishes_dms_metrics_and_a_stopped_one_none(
    s3, s3_server, source_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", s3_server.url)  # moto serves CloudWatch
    cloudwatch = boto3.client("cloudwatch", **s3_server.client_arguments())
    make_accounts(source_db, 200)
    with ThreadedLocalDms(
        state_dir=tmp_path / "localdms", transition_seconds=0.2, metrics_period=1
    ) as server:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline, arn = capturing_task(dms, s3, source_db)
        change_accounts(source_db, 100_001, 40)
        source_db.execute("INSERT INTO app.accounts VALUES (999988, 's', 0, now(), true, '{}')")
        wait_for_sentinel(s3, pipeline.bucket, 999_988)
        time.sleep(3)  # idle periods after the changes are written

        task = {"ReplicationInstanceIdentifier": "test-instance",
                "ReplicationTaskIdentifier": arn.rsplit(":", 1)[-1]}  # fmt: skip
        listed = cloudwatch.list_metrics(Namespace="AWS/DMS")["Metrics"]
        names = {
            m["MetricName"]
            for m in listed
            if {d["Name"]: d["Value"] for d in m["Dimensions"]} == task
        }
        assert {
            "CDCLatencySource", "CDCLatencyTarget", "CDCIncomingChanges", "CDCChangesMemoryTarget",
            "CDCThroughputRowsSource", "CDCThroughputRowsTarget", "FullLoadThroughputRowsSource",
            "FullLoadThroughputRowsTarget",
        } <= names  # fmt: skip
        latency = statistics(cloudwatch, "CDCLatencySource", task)
        assert latency
        assert {p["Unit"] for p in latency} == {"Seconds"}
        assert min(p["Minimum"] for p in latency) == 0  # nothing new to read: 0, as DMS resets it
        read = statistics(cloudwatch, "CDCThroughputRowsSource", task)
        assert max(p["Maximum"] for p in read) > 0
        assert {p["Unit"] for p in read} == {"Count/Second"}
        instance = {"ReplicationInstanceIdentifier": "test-instance"}
        for name, unit in (("CPUUtilization", "Percent"), ("FreeableMemory", "Bytes"),
                           ("FreeStorageSpace", "Bytes")):  # fmt: skip
            points = statistics(cloudwatch, name, instance)
            assert points, name
            assert {p["Unit"] for p in points} == {unit}, name

        dms.stop_replication_task(ReplicationTaskArn=arn)
        wait_for_status(dms, arn, {"stopped"})
        time.sleep(1.5)
        before = sum(p["SampleCount"] for p in statistics(cloudwatch, "CDCLatencySource", task))
        time.sleep(3)  # three periods of a stopped task
        after = sum(p["SampleCount"] for p in statistics(cloudwatch, "CDCLatencySource", task))
        assert after == before  # a stopped task publishes nothing, as on AWS
