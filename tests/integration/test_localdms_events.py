"""DMS's events on EventBridge and SNS, read the way a consumer reads them: a rule on the default
bus matching ``source: aws.dms`` sends them to an SQS queue (moto routes it), an event
subscription's SNS topic has an SQS queue subscribed, and the test reads the queues
(``localdms/notifications.py``, ``dms_spec/events.py``); the subscription's lifecycle as the
Terraform provider's ``aws_dms_event_subscription`` drives it."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import botocore.exceptions
import pytest

from localdms.server import ThreadedLocalDms
from tests.integration.test_localdms_serverless import create_config, watch
from tests.pipeline import create_task, provision, run_task, select_rules

pytestmark = pytest.mark.integration


def queue_behind_a_dms_rule(s3_server: Any, name: str = "dms-events") -> tuple[Any, str]:
    """An SQS queue that a rule on the default bus feeds with every ``aws.dms`` event."""
    sqs = boto3.client("sqs", **s3_server.client_arguments())
    events = boto3.client("events", **s3_server.client_arguments())
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.dms"]}))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
    return sqs, url


def queue_behind_a_topic(s3_server: Any, name: str) -> tuple[Any, str, str]:
    """An SNS topic with an SQS queue subscribed: (sqs client, queue URL, topic ARN)."""
    sqs = boto3.client("sqs", **s3_server.client_arguments())
    sns = boto3.client("sns", **s3_server.client_arguments())
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue)
    return sqs, url, topic


def received(
    sqs: Any, url: str, until: int, timeout: float = 30, settle: float = 0.0
) -> list[dict[str, Any]]:
    """The messages in the queue, once there are at least ``until`` (or the timeout passed),
    then any more arriving within ``settle`` seconds."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (len(found) < until and time.monotonic() < deadline) or settle > 0:
        if len(found) >= until or time.monotonic() >= deadline:
            settle -= 0.2
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


def test_an_event_subscription_publishes_dms_notifications_to_its_sns_topic(
    s3, s3_server, source_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", s3_server.url)
    sqs, url, topic = queue_behind_a_topic(s3_server, "dms-task-events")
    _, quiet_url, quiet_topic = queue_behind_a_topic(s3_server, "dms-disabled")
    source_db.execute("CREATE TABLE public.t AS SELECT g AS id FROM generate_series(1, 10) g")
    with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.2) as server:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline = provision(dms, s3, source_db)
        arn = create_task(dms, pipeline, select_rules(("public", "t")))
        identifier = dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}]
        )["ReplicationTasks"][0]["ReplicationTaskIdentifier"]
        dms.create_event_subscription(
            SubscriptionName="task-state", SnsTopicArn=topic, SourceType="replication-task",
            EventCategories=["state change", "failure"], SourceIds=[identifier],
        )  # fmt: skip
        dms.create_event_subscription(
            SubscriptionName="off", SnsTopicArn=quiet_topic, Enabled=False
        )
        time.sleep(0.3)  # active after transition_seconds
        run_task(dms, arn)
        envelopes = received(sqs, url, until=2, settle=1.0)
        assert received(sqs, quiet_url, until=1, timeout=0.5) == []

    # As a Lambda behind the topic reads them: the SNS record's Subject and JSON Message.
    assert {e["Subject"] for e in envelopes} == {"DMS Notification Message"}
    messages = [json.loads(e["Message"]) for e in envelopes]
    started, stopped = messages  # only the categories subscribed to: no creation event
    assert "CHAP_Events.html#DMS-EVENT-0069" in started["Event ID"]
    assert started["Event Message"] == "Replication task has started."
    assert "CHAP_Events.html#DMS-EVENT-0079" in stopped["Event ID"]
    assert stopped["Event Message"] == (
        "Replication task has stopped. Stop Reason FULL_LOAD_ONLY_FINISHED."
    )
    assert stopped["Event Source"] == "replication-task"
    assert f"#tasks:ids={identifier}" in stopped["Identifier Link"]
    assert stopped["Identifier Link"].splitlines()[1].strip() == f"SourceId: {identifier}"


def test_the_event_subscription_lifecycle_as_terraform_drives_it(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", s3_server.url)
    _, _, topic = queue_behind_a_topic(s3_server, "dms-lifecycle")
    with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.2) as server:
        dms = boto3.client("dms", endpoint_url=server.url)

        def read(name: str) -> dict[str, Any]:  # the provider's findEventSubscriptionByName
            found = dms.describe_event_subscriptions(SubscriptionName=name)
            assert len(found["EventSubscriptionsList"]) == 1
            return dict(found["EventSubscriptionsList"][0])

        def settle(name: str) -> dict[str, Any]:  # its waiters: creating/modifying → active
            for _ in range(50):
                if (current := read(name))["Status"] == "active":
                    return current
                time.sleep(0.05)
            raise AssertionError(current)

        created = dms.create_event_subscription(
            SubscriptionName="tf-events", SnsTopicArn=topic, SourceType="replication-instance",
            EventCategories=["creation", "Failure"], Enabled=True,
            Tags=[{"Key": "team", "Value": "data"}],
        )["EventSubscription"]  # fmt: skip
        assert created["Status"] == "creating"
        active = settle("tf-events")
        assert (active["CustSubscriptionId"], active["SnsTopicArn"], active["SourceType"]) == (
            "tf-events", topic, "replication-instance",
        )  # fmt: skip
        assert active["EventCategoriesList"] == ["creation", "Failure"]  # as given: no diff
        assert active["SourceIdsList"] == []
        assert active["Enabled"] is True
        arn = "arn:aws:dms:us-east-1:123456789012:es:tf-events"  # as the provider builds it
        assert dms.list_tags_for_resource(ResourceArn=arn)["TagList"][0]["Value"] == "data"

        modified = dms.modify_event_subscription(
            SubscriptionName="tf-events", SnsTopicArn=topic, SourceType="replication-instance",
            EventCategories=["deletion"], Enabled=False,
        )["EventSubscription"]  # fmt: skip
        assert modified["Status"] == "modifying"
        changed = settle("tf-events")
        assert (changed["EventCategoriesList"], changed["Enabled"]) == (["deletion"], False)

        def code(call: Any, **kwargs: Any) -> str:
            with pytest.raises(botocore.exceptions.ClientError) as excinfo:
                call(**kwargs)
            return str(excinfo.value.response["Error"]["Code"])

        missing_topic = topic.rsplit(":", 1)[0] + ":no-such-topic"
        assert code(dms.create_event_subscription, SubscriptionName="x",
                    SnsTopicArn=missing_topic) == "SNSInvalidTopicFault"  # fmt: skip
        assert code(dms.create_event_subscription, SubscriptionName="tf-events",
                    SnsTopicArn=topic) == "ResourceAlreadyExistsFault"  # fmt: skip
        assert code(dms.create_event_subscription, SubscriptionName="y", SnsTopicArn=topic,
                    SourceType="replication-task",
                    EventCategories=["low storage"]) == "InvalidParameterValueException"  # fmt: skip

        assert (
            dms.delete_event_subscription(SubscriptionName="tf-events")["EventSubscription"][
                "Status"
            ]
            == "deleting"
        )
        deadline = time.monotonic() + 5  # the provider's waitEventSubscriptionDeleted
        while (listed := dms.describe_event_subscriptions()["EventSubscriptionsList"]) != []:
            assert listed[0]["Status"] == "deleting"
            assert time.monotonic() < deadline, listed
            time.sleep(0.05)
        assert code(dms.describe_event_subscriptions, SubscriptionName="tf-events") == (
            "ResourceNotFoundFault"  # what the provider takes for "gone"
        )


def test_a_serverless_replication_sends_its_state_changes_to_eventbridge(
    s3, s3_server, source_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", s3_server.url)
    sqs, url = queue_behind_a_dms_rule(s3_server, "dms-serverless-events")
    source_db.execute("CREATE TABLE public.t AS SELECT g AS id FROM generate_series(1, 10) g")
    with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.1) as server:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline = provision(dms, s3, source_db)
        arn = create_config(dms, pipeline, select_rules(("public", "t")))
        dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="start-replication")
        watch(dms, arn, {"stopped", "failed"})
        found = received(sqs, url, until=20, timeout=5)

    replications = [e for e in found if e["detail-type"] == "DMS Replication State Change"]
    assert {e["resources"][0] for e in replications} == {arn}
    assert {e["detail"]["type"] for e in replications} == {"REPLICATION_CONFIG"}
    kinds = [e["detail"]["eventType"] for e in replications]
    assert kinds == [
        "REPLICATION_INITIALIZING", "REPLICATION_PREPARING_METADATA_RESOURCES",
        "REPLICATION_TESTING_CONNECTION", "REPLICATION_FETCHING_METADATA",
        "REPLICATION_CALCULATING_CAPACITY", "REPLICATION_PROVISIONING_CAPACITY",
        "REPLICATION_REPLICATION_STARTING", "REPLICATION_RUNNING", "REPLICATION_STOPPED",
    ]  # fmt: skip
    resource_id = arn.rsplit(":", 1)[-1]
    assert replications[0]["detail"]["detailMessage"] == (
        f"Replication with resource id, '{resource_id}', is initializing."
    )
    assert replications[-1]["detail"]["detailMessage"].endswith(
        "has stopped. Stop Reason FULL_LOAD_ONLY_FINISHED"
    )
