"""The documented IAM policies (docs/aws/) grant exactly what the flow calls: recorded in
end-to-end runs."""

from __future__ import annotations

import asyncio
import json

import pytest
from prefect_aws import AwsCredentials

from flows import dms_ingestion
from flows.dms_ingestion import stop_task_on_cancellation
from tests.docs_blocks import block
from tests.integration.conftest import write_config

pytestmark = pytest.mark.integration

IAM_ACTION_OF_OPERATION = {"s3:ListObjectsV2": "s3:ListBucket"}  # DMS operations map one to one


def policy_actions(name: str = "iam-policy") -> set[str]:
    actions: set[str] = set()
    for statement in json.loads(block(name).text)["Statement"]:
        assert statement["Effect"] == "Allow"
        actions.update(statement["Action"])
    return actions


def recorder() -> set[str]:
    """The IAM actions of every call the flow's clients make from now on."""
    recorded: set[str] = set()

    def record(model, **kwargs):  # botocore "before-call" event
        prefix = {"database-migration-service": "dms"}.get(
            model.service_model.service_id.hyphenize(), "s3"
        )
        operation = f"{prefix}:{model.name}"
        recorded.add(IAM_ACTION_OF_OPERATION.get(operation, operation))

    credentials = AwsCredentials()  # what the flow uses without a block: the same cached clients
    for service in ("dms", "s3"):
        client = credentials.get_client(service)
        client.meta.events.unregister("before-call", unique_id=f"iam-{service}")
        client.meta.events.register("before-call", record, unique_id=f"iam-{service}")
    return recorded


async def test_policy_matches_the_operations_the_flow_makes(job, dms, source_db, monkeypatch):
    recorded = recorder()

    source_db.execute(
        "CREATE TABLE bookings.big AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 1000000) g"
    )
    source_db.execute(
        "CREATE VIEW bookings.broken AS SELECT 1 / (id - id) AS boom FROM bookings.flights"
    )
    rules = [{"rule-type": "selection", "rule-id": "9", "rule-name": "views", "rule-action": "include",
              "object-locator": {"schema-name": "bookings", "table-name": "broken", "table-type": "view"}}]  # fmt: skip
    # 1. create, assess (preflight), start, monitor, verify; a table error while the load runs
    #    is reloaded (ReloadTables)
    with pytest.raises(Exception, match="Tables in error"):
        await dms_ingestion(
            config_path=str(job), poll_interval_seconds=0.2,
            overrides={"table_mapping_rules": rules, "reload_errored_tables": 1,
                       "preflight_role_arn": "arn:aws:iam::123456789012:role/dms-s3-target"},
        )  # fmt: skip
    # 2. changed mappings: modify, reload-target, then delete after success
    write_config(job, [{"schema_name": "bookings", "table_name": "flights"}])
    await dms_ingestion(
        config_path=str(job),
        poll_interval_seconds=0.2,
        overrides={"delete_task_after_success": True},
    )
    # 3. the cancellation hook stops a running task
    write_config(job, [{"schema_name": "bookings", "table_name": "big"}])
    run = asyncio.ensure_future(dms_ingestion(config_path=str(job), poll_interval_seconds=0.2))
    while not any(
        t["Status"] == "running"
        for t in dms.describe_replication_tasks(WithoutSettings=True).get("ReplicationTasks", [])
    ):
        await asyncio.sleep(0.1)
    await stop_task_on_cancellation(
        dms_ingestion, type("R", (), {"parameters": {"config_path": str(job)}})(), None
    )  # type: ignore[arg-type]
    with pytest.raises(Exception, match="Stop Reason NORMAL"):
        await run

    allowed = policy_actions()
    created_with_tags = {"dms:AddTagsToResource"}  # implied by CreateReplicationTask's Tags
    passed_role = {"iam:PassRole"}  # implied by the assessment's ServiceAccessRoleArn
    assert recorded - allowed == set(), f"the policy lacks {recorded - allowed}"
    assert allowed - recorded - created_with_tags - passed_role == set(), (
        f"the policy grants unused {allowed - recorded}"
    )


async def test_serverless_policy_matches_the_operations_the_flow_makes(
    job, dms, source_db, monkeypatch
):
    """The same three runs on DMS Serverless, against the documented serverless policy."""
    monkeypatch.delenv("DMS_REPLICATION_INSTANCE_ARN")
    compute = {"compute_config": {"MaxCapacityUnits": 2}}
    recorded = recorder()
    source_db.execute(
        "CREATE TABLE bookings.big AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 1000000) g"
    )
    source_db.execute(
        "CREATE VIEW bookings.broken AS SELECT 1 / (id - id) AS boom FROM bookings.flights"
    )
    rules = [{"rule-type": "selection", "rule-id": "9", "rule-name": "views", "rule-action": "include",
              "object-locator": {"schema-name": "bookings", "table-name": "broken", "table-type": "view"}}]  # fmt: skip
    # 1. create, start, monitor, verify; a table error while it loads is reloaded
    with pytest.raises(Exception, match="Tables in error"):
        await dms_ingestion(
            config_path=str(job), poll_interval_seconds=0.2,
            overrides={"table_mapping_rules": rules, "reload_errored_tables": 1, **compute},
        )  # fmt: skip
    # 2. changed mappings: modify, reload-target, then delete after success
    write_config(job, [{"schema_name": "bookings", "table_name": "flights"}], **compute)
    await dms_ingestion(
        config_path=str(job), poll_interval_seconds=0.2,
        overrides={"delete_task_after_success": True},
    )  # fmt: skip
    # 3. the cancellation hook stops a running replication
    write_config(job, [{"schema_name": "bookings", "table_name": "big"}], **compute)
    run = asyncio.ensure_future(dms_ingestion(config_path=str(job), poll_interval_seconds=0.2))
    while not any(
        r["Status"] == "running" for r in dms.describe_replications().get("Replications", [])
    ):
        await asyncio.sleep(0.1)
    await stop_task_on_cancellation(
        dms_ingestion, type("R", (), {"parameters": {"config_path": str(job)}})(), None
    )  # type: ignore[arg-type]
    with pytest.raises(Exception, match="Stop Reason NORMAL"):
        await run

    allowed = policy_actions("iam-policy-serverless")
    created_with_tags = {"dms:AddTagsToResource"}  # implied by CreateReplicationConfig's Tags
    assert recorded - allowed == set(), f"the policy lacks {recorded - allowed}"
    assert allowed - recorded - created_with_tags == set(), (
        f"the policy grants unused {allowed - recorded}"
    )
