"""The flow's decisions, as pure functions: no Stubber, no server."""

import json

import pytest

from flows.decisions import (
    TaskAction,
    WantedTask,
    plan_task,
    should_resume,
    tables_to_reload,
    task_succeeded,
)
from flows.exceptions import ReplicationTaskConflictError

pytestmark = pytest.mark.unit

NO_TABLES = "Last Error  No tables were found at task initialization. Stop Reason FATAL_ERROR Error Level FATAL"
MAPPINGS = json.dumps({"rules": [{"rule-type": "selection", "rule-id": "1"}]})
WANTED = WantedTask(
    identifier="t",
    source_endpoint_arn="arn:s",
    target_endpoint_arn="arn:t",
    replication_instance_arn="arn:r",
    migration_type="full-load",
    table_mappings=MAPPINGS,
    task_settings=None,
)


def existing(status: str, **extra) -> dict:
    return {
        "ReplicationTaskArn": "arn:task", "Status": status, "SourceEndpointArn": "arn:s",
        "TargetEndpointArn": "arn:t", "ReplicationInstanceArn": "arn:r",
        "MigrationType": "full-load", "TableMappings": MAPPINGS, **extra,
    }  # fmt: skip


def errored(*names: str) -> list[dict]:
    return [{"SchemaName": "s", "TableName": n, "TableState": "Table error"} for n in names]


@pytest.mark.parametrize(
    ("task", "action", "previously_run"),
    [
        (None, TaskAction.CREATE, False),
        (existing("deleting"), TaskAction.WAIT_FOR_DELETION, False),
        (existing("creating"), TaskAction.WAIT_TO_SETTLE, False),
        (existing("modifying"), TaskAction.WAIT_TO_SETTLE, False),
        (existing("stopping"), TaskAction.WAIT_TO_SETTLE, False),
        (existing("ready"), TaskAction.REUSE, False),
        (existing("stopped"), TaskAction.REUSE, True),
        (existing("failed"), TaskAction.REUSE, True),
        (existing("ready", ReplicationTaskStartDate="2026-01-01"), TaskAction.REUSE, True),
    ],
)
def test_plan_for_each_status(task, action, previously_run):
    plan = plan_task(task, WANTED)
    assert (plan.action, plan.previously_run) == (action, previously_run)


def test_changed_mappings_or_missing_settings_modify_and_equal_ones_reuse():
    other = json.dumps({"rules": [{"rule-type": "selection", "rule-id": "2"}]})
    assert plan_task(existing("stopped", TableMappings=other), WANTED).changes == {
        "TableMappings": MAPPINGS
    }
    settings = json.dumps({"Logging": {"EnableLogging": True}})
    wanted = WantedTask(**{**WANTED.__dict__, "task_settings": settings})
    applied = json.dumps({"Logging": {"EnableLogging": True, "LogComponents": []}})
    assert plan_task(existing("stopped", ReplicationTaskSettings=applied), wanted).action == (
        TaskAction.REUSE
    )
    plan = plan_task(existing("stopped", ReplicationTaskSettings="{}"), wanted)
    assert (plan.action, plan.changes) == (
        TaskAction.MODIFY,
        {"ReplicationTaskSettings": settings},
    )


@pytest.mark.parametrize("status", ["running", "starting"])
def test_a_running_task_is_refused_with_what_to_do_or_attached(status):
    with pytest.raises(ReplicationTaskConflictError, match=rf"already {status}.*if_running=attach"):
        plan_task(existing(status), WANTED)
    attach = WantedTask(**{**WANTED.__dict__, "if_running": "attach"})
    assert plan_task(existing(status), attach).action == TaskAction.ATTACH


@pytest.mark.parametrize(
    "member", ["SourceEndpointArn", "TargetEndpointArn", "ReplicationInstanceArn", "MigrationType"]
)
def test_what_dms_cannot_change_is_refused_naming_the_member(member):
    with pytest.raises(ReplicationTaskConflictError, match=rf"exists with {member} other.*delete"):
        plan_task(existing("stopped", **{member: "other"}), WANTED)


def test_reloads_only_while_running_within_the_budget_and_ten_at_a_time():
    statistics = errored(*(f"t{i}" for i in range(12)))
    assert len(tables_to_reload({"Status": "running"}, statistics, 1)) == 10
    assert tables_to_reload({"Status": "running"}, statistics, 0) == []
    assert tables_to_reload({"Status": "stopped"}, statistics, 3) == []
    assert tables_to_reload({"Status": "running"}, [], 3) == []


def test_resume_only_a_stopped_task_with_errors_and_budget_left():
    assert should_resume({"Status": "stopped"}, errored("a"), 1)
    assert not should_resume({"Status": "stopped"}, errored("a"), 0)
    assert not should_resume({"Status": "failed"}, errored("a"), 1)
    assert not should_resume({"Status": "stopped"}, [], 1)


def test_one_budget_for_the_run_however_reloads_and_resumes_mix():
    """Spend a budget of 3 the way the flow does: ReloadTables while running, then resumes."""
    budget, spent, actions = 3, 0, []
    for task in ({"Status": "running"}, {"Status": "running"}, {"Status": "stopped"},
                 {"Status": "stopped"}, {"Status": "stopped"}):  # fmt: skip
        if tables_to_reload(task, errored("a"), budget - spent):
            spent += 1
            actions.append("reload")
        elif should_resume(task, errored("a"), budget - spent):
            spent += 1
            actions.append("resume")
    assert actions == ["reload", "reload", "resume"]
    assert spent == budget


@pytest.mark.parametrize(
    ("status", "reason", "migration_type", "states", "succeeded"),
    [
        ("stopped", "Stop Reason FULL_LOAD_ONLY_FINISHED", "full-load", ["Table completed"], True),
        ("stopped", "Stop Reason FULL_LOAD_ONLY_FINISHED", "full-load", ["Table completed", "Table error"], False),
        ("stopped", "Stop Reason NORMAL", "full-load", ["Table completed"], False),
        ("failed", NO_TABLES, "full-load", [], False),
        ("running", None, "full-load-and-cdc", ["Table completed"], True),
        ("running", None, "full-load", ["Table completed"], False),
        ("stopped", "Stop Reason STOPPED_AFTER_FULL_LOAD", "full-load-and-cdc", ["Table completed"], True),
        ("running", None, "cdc", [], True),
    ],
)  # fmt: skip
def test_success_depends_on_status_stop_reason_and_tables(
    status, reason, migration_type, states, succeeded
):
    task = {"Status": status, "StopReason": reason}
    assert task_succeeded(task, migration_type, states) is succeeded
