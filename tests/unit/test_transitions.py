"""Statuses, table states and checkpoints change only through the transition methods of the
classes that hold them, as ``localdms/backend/resources.py`` says: a task's in
``ReplicationTask``, a table's in ``TableStatistics``, an assessment run's in ``records.py``.

Read from the source with ``ast``: an assignment to one of those fields (or a ``setattr`` naming
one) anywhere else in ``localdms/`` fails here, with its file and line, so a new module that
writes a status directly cannot land.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

LOCALDMS = Path(__file__).resolve().parents[2] / "localdms"
FIELDS = frozenset(
    {"status", "pending_status", "pending_at", "stop_reason", "last_failure_message",
     "recovery_checkpoint", "slot_name", "capturing", "table_state"}
)  # fmt: skip
"""The fields: a resource's statuses and failure, a task's capture position."""
TABLE_STATE = "state"
"""A table's state (``TableStatistics.state``); ``self.state`` elsewhere is other state (the
backend's ``BackendState``)."""
OWNERS = {
    "backend/resources.py": {"Resource", "Endpoint", "ReplicationInstance", "Connection",
                             "ReplicationSubnetGroup", "ReplicationTask", "EventSubscription"},
    "backend/table_statistics.py": {"TableStatistics"},
    "backend/records.py": {"IndividualAssessment", "AssessmentRun", "TaskAssessment"},
    "backend/replication_config.py": {"ReplicationConfig"},
}  # fmt: skip
"""Where the transition methods are: the classes allowed to assign their own fields."""


def writes_outside_transitions(path: Path, root: Path = LOCALDMS) -> list[str]:
    """``file:line field`` of every write of a guarded field not made by its owner's method."""
    module = path.relative_to(root).as_posix()
    owners = OWNERS.get(module, set())
    found: list[str] = []

    def check(node: ast.AST, classes: list[str]) -> None:
        if isinstance(node, ast.ClassDef):
            for child in node.body:
                check(child, [*classes, node.name])
            return
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and isinstance(part.ctx, ast.Store):
                    on_self = isinstance(part.value, ast.Name) and part.value.id == "self"
                    owned = on_self and bool(classes) and classes[-1] in owners
                    if (part.attr in FIELDS and not owned) or (
                        part.attr == TABLE_STATE and not on_self
                    ):
                        found.append(f"{module}:{node.lineno} {ast.unparse(part)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in {*FIELDS, TABLE_STATE}
        ):
            found.append(f"{module}:{node.lineno} setattr(..., {node.args[1].value!r})")
        for child in ast.iter_child_nodes(node):
            check(child, classes)

    check(ast.parse(path.read_text()), [])
    return found


def test_statuses_states_and_checkpoints_change_only_through_transition_methods():
    found = [
        line for path in sorted(LOCALDMS.rglob("*.py")) for line in writes_outside_transitions(path)
    ]
    assert found == [], "write these through a transition method of their class: " + ", ".join(
        found
    )


def test_the_check_finds_a_direct_write(tmp_path):
    """The check itself: a module that assigns a task's status, or a table's state, is caught."""
    module = LOCALDMS / "backend" / "tasks.py"  # where an operation would be tempted to
    source = (
        module.read_text()
        + "\n\ndef sneak(task, table):\n    task.status = 'running'\n    table.state = 'x'\n"
    )
    path = tmp_path / "localdms" / "backend" / "tasks.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    found = writes_outside_transitions(path, root=tmp_path / "localdms")
    assert [line.split(" ", 1)[1] for line in found] == ["task.status", "table.state"]
