"""DMS premigration assessments for a PostgreSQL source, by their API names.

Names and what each checks are the AWS DMS User Guide's ("PostgreSQL assessments",
CHAP_Tasks.AssessmentReport.PG, and the general table of CHAP_Tasks.AssessmentReport1). Only
the ones that apply to an S3 target are listed (the target-side ones need a relational target).
Statuses are DMS's: a run is ``passed`` unless an individual assessment ``failed``.

Example:
    >>> [a.name for a in applicable("full-load")][:2]
    ['postgres-check-dbversion', 'postgres-check-select-object-privileges']
    >>> run_status(["passed", "warning"]), run_status(["passed", "failed"])
    (<RunStatus.PASSED: 'passed'>, <RunStatus.FAILED: 'failed'>)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

CDC_TYPES = ("cdc", "full-load-and-cdc")
LOAD_TYPES = ("full-load", "full-load-and-cdc")
ALL_TYPES = ("full-load", "cdc", "full-load-and-cdc")


class RunStatus(StrEnum):
    """ReplicationTaskAssessmentRun.Status (the guide's list)."""

    STARTING = "starting"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR_PROVISIONING = "error-provisioning"
    ERROR_EXECUTING = "error-executing"
    CANCELLING = "cancelling"
    """DMS's word for a cancelled run, during and after."""
    DELETING = "deleting"
    INVALID_STATE = "invalid state"


class AssessmentStatus(StrEnum):
    """ReplicationTaskIndividualAssessment.Status."""

    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


RUN_STATUSES = tuple(RunStatus)
INDIVIDUAL_STATUSES = tuple(AssessmentStatus)
NOT_DONE = frozenset({AssessmentStatus.PENDING, AssessmentStatus.RUNNING})
"""An individual assessment in these has not ended."""


@dataclass(frozen=True)
class Assessment:
    """One individual assessment: its API name, the guide's description, where it applies."""

    name: str
    description: str
    migration_types: tuple[str, ...]


CATALOGUE = (
    Assessment("postgres-check-dbversion",
               "Validate if source database version is supported by DMS for migration.", ALL_TYPES),
    Assessment("postgres-check-select-object-privileges",
               "Verify DMS User Full Load Permissions: the DMS user has SELECT on every table "
               "in the task's scope.", LOAD_TYPES),
    Assessment("postgres-check-limited-lob-size",
               "Recommend Max LOB setting when LOB objects are found: set the task's maximum LOB "
               "size to avoid data truncation.", ALL_TYPES),
    Assessment("postgres-check-pk-lob",
               "Validate if the source table primary key is of LOB Datatype (not supported).",
               ALL_TYPES),
    Assessment("postgres-check-pk",
               "Validate if the source table has a primary key: DMS doesn't support replication "
               "for tables without primary keys, unless the replica identity is full.", CDC_TYPES),
    Assessment("table-with-no-primary-key-or-unique-constraint",
               "Source table without primary key for CDC or full load and CDC tasks only.",
               CDC_TYPES),
    Assessment("unsupported-data-types-in-source",
               "Checks for data types unsupported by AWS DMS in the source endpoint. Not all data "
               "types can be migrated between engines.", ALL_TYPES),
    Assessment("table-with-lob-but-without-primary-key-or-unique-constraint",
               "Checks for the presence of source tables with LOBs but without a primary key or "
               "a unique key. Currently, a table must have a primary key or a unique key for AWS "
               "DMS to migrate LOBs.", ALL_TYPES),
    Assessment("postgres-check-wallevel",
               "Validate if wal_level is set to logical on the source database.", CDC_TYPES),
    Assessment("postgres-check-maxwalsenders",
               "Check if the source database parameter max_wal_senders is set to support CDC "
               "(greater than 1).", CDC_TYPES),
    Assessment("postgres-check-replication-slots-count",
               "Validates availability of free replication slots for CDC.", CDC_TYPES),
    Assessment("postgres-check-walsenderstimeout",
               "Validate if wal_sender_timeout is set to a minimum required value to support DMS "
               "CDC (10000 ms).", CDC_TYPES),
    Assessment("postgres-check-longrunningtxn",
               "Validate whether the source database has any long running transactions (more "
               "than 10 minutes).", CDC_TYPES),
    Assessment("postgres-check-preparedtxn",
               "Validate if prepared transactions are present on the source database.", CDC_TYPES),
)  # fmt: skip
BY_NAME = {assessment.name: assessment for assessment in CATALOGUE}


def applicable(migration_type: str) -> list[Assessment]:
    """The assessments that apply to a task of this migration type (PostgreSQL → S3)."""
    return [a for a in CATALOGUE if migration_type in a.migration_types]


def run_status(individual: Sequence[str]) -> RunStatus:
    """A finished run's status from its individual assessments' statuses."""
    if AssessmentStatus.FAILED in individual:
        return RunStatus.FAILED
    if AssessmentStatus.ERROR in individual:
        return RunStatus.ERROR_EXECUTING
    return RunStatus.PASSED
