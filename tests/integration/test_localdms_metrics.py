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
from tests.integration.test_localdms_serverless import create_config, watch
from tests.pipeline import provision, select_rules, wait_for_status

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
        # The moto server is shared by this worker's tests (more than one page of metrics):
        # filtered by the task's dimensions and paginated, as a dashboard lists them.
        pages = cloudwatch.get_paginator("list_metrics").paginate(
            Namespace="AWS/DMS", Dimensions=[{"Name": k, "Value": v} for k, v in task.items()]
        )
        names = {
            m["MetricName"]
            for page in pages
            for m in page["Metrics"]
            if {d["Name"]: d["Value"] for d in m["Dimensions"]} == task
        }
        assert {
            "CDCLatencySource", "CDCLatencyTarget", "CDCIncomingChanges", "CDCChangesMemorySource",
            "CDCChangesMemoryTarget", "CDCChangesDiskSource", "CDCChangesDiskTarget",
            "CDCThroughputRowsSource", "CDCThroughputRowsTarget", "CDCThroughputBandwidthSource",
            "CDCThroughputBandwidthTarget", "FullLoadThroughputRowsSource",
            "FullLoadThroughputRowsTarget", "FullLoadThroughputBandwidthSource",
            "FullLoadThroughputBandwidthTarget",
        } <= names  # fmt: skip
        latency = statistics(cloudwatch, "CDCLatencySource", task)
        assert latency
        assert {p["Unit"] for p in latency} == {"Seconds"}
        assert min(p["Minimum"] for p in latency) == 0  # nothing new to read: 0, as DMS resets it
        read = statistics(cloudwatch, "CDCThroughputRowsSource", task)
        assert max(p["Maximum"] for p in read) > 0
        assert {p["Unit"] for p in read} == {"Count/Second"}
        for name in (
            "CDCThroughputBandwidthSource",
            "CDCThroughputBandwidthTarget",
            "FullLoadThroughputBandwidthSource",
            "FullLoadThroughputBandwidthTarget",
        ):
            points = statistics(cloudwatch, name, task)
            assert {p["Unit"] for p in points} == {"Kilobytes/Second"}, name
            assert max(p["Maximum"] for p in points) > 0, name  # the changes' and rows' bytes
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


def test_a_serverless_replication_publishes_with_the_dimension_dms_serverless_uses(
    s3, s3_server, source_db, tmp_path, monkeypatch
):
    """``ReplicationConfigId`` is ``<account>:<the config ARN's last segment>``, as observed on
    AWS; no instance dimension (a replication has none)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", s3_server.url)
    cloudwatch = boto3.client("cloudwatch", **s3_server.client_arguments())
    make_accounts(source_db, 50)
    with ThreadedLocalDms(
        state_dir=tmp_path / "localdms", transition_seconds=0.1, metrics_period=1
    ) as server:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline = provision(dms, s3, source_db)
        arn = create_config(dms, pipeline, select_rules(("app", "accounts")),
                            kind="full-load-and-cdc")  # fmt: skip
        dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="start-replication")
        watch(dms, arn, {"running"})
        time.sleep(2.5)
        dimensions = {"ReplicationConfigId": f"123456789012:{arn.rsplit(':', 1)[-1]}"}
        latency = statistics(cloudwatch, "CDCLatencySource", dimensions)
        assert latency
        assert {p["Unit"] for p in latency} == {"Seconds"}
        dms.stop_replication(ReplicationConfigArn=arn)
        watch(dms, arn, {"stopped"})
