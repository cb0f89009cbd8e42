"""DMS's events on EventBridge, read the way a consumer reads them: a rule on the default bus
matching ``source: aws.dms`` sends them to an SQS queue (moto routes it), and the test reads the
queue (``localdms/eventbridge.py``, ``dms_spec/events.py``)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from localdms.server import ThreadedLocalDms
from tests.pipeline import create_task, provision, run_task, select_rules

pytestmark = pytest.mark.integration


def queue_behind_a_dms_rule(s3_server: Any) -> tuple[Any, str]:
    """An SQS queue that a rule on the default bus feeds with every ``aws.dms`` event."""
    sqs = boto3.client("sqs", **s3_server.client_arguments())
    events = boto3.client("events", **s3_server.client_arguments())
    url = sqs.create_queue(QueueName="dms-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="dms-events", EventPattern=json.dumps({"source": ["aws.dms"]}))
    events.put_targets(Rule="dms-events", Targets=[{"Id": "queue", "Arn": arn}])
    return sqs, url


def received(sqs: Any, url: str, until: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The events in the queue, once there are at least ``until`` (or the timeout passed)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < until and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        time.sleep(0.2)
    return found


def test_task_events_reach_an_sqs_queue_through_an_eventbridge_rule(
    s3, s3_server, source_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", s3_server.url)
    sqs, url = queue_behind_a_dms_rule(s3_server)
    source_db.execute("CREATE TABLE public.t AS SELECT g AS id FROM generate_series(1, 10) g")
    with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.2) as server:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline = provision(dms, s3, source_db)
        arn = create_task(dms, pipeline, select_rules(("public", "t")))
        run_task(dms, arn)
        events = received(sqs, url, until=5)

    by_type = {e["detail"]["eventType"]: e for e in events}
    started, stopped = by_type["REPLICATION_TASK_STARTED"], by_type["REPLICATION_TASK_STOPPED"]
    assert (started["source"], started["detail-type"]) == (
        "aws.dms",
        "DMS Replication Task State Change",
    )
    assert started["resources"] == [arn]
    assert started["detail"]["eventId"] == "DMS-EVENT-0069"
    assert started["detail"]["type"] == "REPLICATION_TASK"
    assert started["detail"]["category"] == "StateChange"
    # What rules in the wild match on: the stop reason in detailMessage.
    assert stopped["detail"]["detailMessage"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    assert stopped["detail"]["eventId"] == "DMS-EVENT-0079"
    assert by_type["REPLICATION_TASK_CREATED"]["resources"] == [arn]
    instance = by_type["REPLICATION_INSTANCE_CREATED"]
    assert instance["detail-type"] == "DMS Replication Instance State Change"
    assert instance["resources"] == [pipeline.instance_arn]
