"""Premigration assessment runs through boto3: really checked against PostgreSQL, results in S3
as the guide names them, DMS's statuses and refusals."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import psycopg
import pytest
from psycopg import sql

from sandbox.postgres import ThrowawayPostgres
from tests.conftest import PostgresServer, SourceDatabase
from tests.pipeline import (
    create_task,
    describe_task,
    provision,
    read_objects,
    select_rules,
    table_statistics,
    wait_until_finished,
)

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/dms-assessments"


def code_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def assess(dms: Any, task_arn: str, name: str = "preflight", **extra: Any) -> dict[str, Any]:
    """Start a run and wait until it ends; the run and its individual assessments by name."""
    run = dms.start_replication_task_assessment_run(
        ReplicationTaskArn=task_arn, ServiceAccessRoleArn=ROLE,
        ResultLocationBucket="target-bucket", ResultLocationFolder="assessments",
        AssessmentRunName=name, **extra,
    )["ReplicationTaskAssessmentRun"]  # fmt: skip
    arn = run["ReplicationTaskAssessmentRunArn"]
    deadline = time.monotonic() + 60
    while run["Status"] in ("starting", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
        run = dms.describe_replication_task_assessment_runs(
            Filters=[{"Name": "replication-task-assessment-run-arn", "Values": [arn]}]
        )["ReplicationTaskAssessmentRuns"][0]
    individual = dms.describe_replication_task_individual_assessments(
        Filters=[{"Name": "replication-task-assessment-run-arn", "Values": [arn]}]
    )["ReplicationTaskIndividualAssessments"]
    return {"run": run, **{a["IndividualAssessmentName"]: a["Status"] for a in individual}}


def test_an_assessment_names_tables_without_keys_and_lobs_over_the_limit(dms, s3, source_db):
    source_db.execute("CREATE SCHEMA app")
    source_db.execute("CREATE TABLE app.keyed (id int PRIMARY KEY, note text)")
    source_db.execute("CREATE TABLE app.nopk (id int, doc jsonb, blob bytea)")
    source_db.execute("INSERT INTO app.keyed VALUES (1, repeat('x', 16384)), (2, 'short')")
    source_db.execute("INSERT INTO app.nopk VALUES (1, jsonb_build_object('k', repeat('y', "
                      "40000)), decode(repeat('ab', 40000), 'hex'))")  # fmt: skip
    pipeline = provision(dms, s3, source_db)
    task = create_task(dms, pipeline, select_rules(("app", "%")),
                       migration_type="full-load-and-cdc")  # fmt: skip
    applicable = dms.describe_applicable_individual_assessments(ReplicationTaskArn=task)[
        "IndividualAssessmentNames"
    ]
    assert {
        "postgres-check-pk",
        "postgres-check-wallevel",
        "postgres-check-limited-lob-size",
    } <= set(applicable)

    result = assess(dms, task)
    run = result["run"]
    assert run["Status"] == "failed"
    assert run["IsLatestTaskAssessmentRun"] is True
    assert result["postgres-check-pk"] == "failed"
    assert result["table-with-no-primary-key-or-unique-constraint"] == "warning"
    assert result["postgres-check-limited-lob-size"] == "warning"
    assert result["postgres-check-wallevel"] == "passed"
    assert result["postgres-check-dbversion"] == "passed"
    assert result["table-with-lob-but-without-primary-key-or-unique-constraint"] == "warning"
    assert result["unsupported-data-types-in-source"] == "passed"
    assert run["ResultStatistic"]["Failed"] == 1
    assert run["AssessmentProgress"]["IndividualAssessmentCompletedCount"] == len(applicable)
    assert "postgres-check-pk" in run["LastFailureMessage"]

    files = read_objects(s3, "target-bucket", "assessments/preflight/")
    assert "assessments/preflight/summary.json" in files
    summary = json.loads(files["assessments/preflight/summary.json"])
    assert summary["status"] == "failed"
    pk = json.loads(files["assessments/preflight/postgres-check-pk.json"])
    assert pk["objects"] == ["app.nopk"]
    lob = json.loads(files["assessments/preflight/postgres-check-limited-lob-size.json"])
    named = " ".join(lob["objects"])
    assert "app.nopk.doc" in named
    assert "app.nopk.blob" in named
    # 16,384 characters of text (an NCLOB, two bytes each): exactly LobMaxSize (32 KB), not over.
    assert "app.keyed.note" not in named
    assert "app.nopk.doc (NCLOB, 80,018 bytes)" in named  # {"k": "y..."}: 40,009 characters
    assert "at least 79 KB" in lob["message"]

    # Raising LobMaxSize and keying the table: the same task passes.
    source_db.execute("ALTER TABLE app.nopk ADD PRIMARY KEY (id)")
    dms.modify_replication_task(
        ReplicationTaskArn=task, ReplicationTaskSettings=json.dumps(
            {"TargetMetadata": {"LobMaxSize": 79}}),
    )  # fmt: skip
    while (
        dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-arn", "Values": [task]}]
        )["ReplicationTasks"][0]["Status"]
        != "ready"
    ):
        time.sleep(0.1)
    second = assess(dms, task, "second")
    assert second["run"]["Status"] == "passed", second
    assert second["postgres-check-limited-lob-size"] == "passed"
    first = dms.describe_replication_task_assessment_runs(
        Filters=[{"Name": "replication-task-assessment-run-arn",
                  "Values": [run["ReplicationTaskAssessmentRunArn"]]}]
    )["ReplicationTaskAssessmentRuns"][0]  # fmt: skip
    assert first["IsLatestTaskAssessmentRun"] is False


def test_types_dms_does_not_migrate_and_arrays_without_a_key_are_named(dms, s3, source_db):
    source_db.execute("CREATE SCHEMA app")
    source_db.execute("CREATE TYPE app.mood AS ENUM ('ok', 'sad')")
    source_db.execute("CREATE TABLE app.odd (id int PRIMARY KEY, m app.mood, ip inet, "
                      "amount numeric, price numeric(12,2), at timestamptz)")  # fmt: skip
    source_db.execute("CREATE TABLE app.tags (id int, tags text[])")  # no primary key
    source_db.execute("INSERT INTO app.tags VALUES (1, '{a,b}')")
    source_db.execute("CREATE TABLE app.fine (id int PRIMARY KEY, tags text[])")
    source_db.execute("INSERT INTO app.fine VALUES (1, '{a,b}')")
    pipeline = provision(dms, s3, source_db)
    task = create_task(dms, pipeline, select_rules(("app", "%")))
    result = assess(dms, task)
    assert result["unsupported-data-types-in-source"] == "warning"
    assert result["table-with-lob-but-without-primary-key-or-unique-constraint"] == "failed"
    files = read_objects(s3, "target-bucket", "assessments/preflight/")
    types = json.loads(files["assessments/preflight/unsupported-data-types-in-source.json"])
    assert types["objects"] == [
        "app.odd.m (ENUM)", "app.odd.ip (INET)", "app.odd.amount (numeric)",
        "app.odd.at (TIMESTAMP(Z))",
    ]  # fmt: skip
    keys = json.loads(
        files[
            "assessments/preflight/table-with-lob-but-without-primary-key-or-unique-constraint.json"
        ]
    )
    assert keys["objects"] == ["app.tags"]

    # What the finding warned of: the full load suspends the table with arrays and no key.
    dms.start_replication_task(ReplicationTaskArn=task,
                               StartReplicationTaskType="start-replication")  # fmt: skip
    wait_until_finished(dms, task)
    states = {key: t["TableState"] for key, t in table_statistics(dms, task).items()}
    assert states[("app", "tags")] == "Table error"
    assert states[("app", "fine")] == "Table completed"
    assert read_objects(s3, pipeline.bucket, "app/tags/") == {}


def test_runs_are_selected_refused_cancelled_and_deleted_as_dms_does(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.t (id int PRIMARY KEY)")
    pipeline = provision(dms, s3, source_db)
    task = create_task(dms, pipeline, select_rules(("public", "t")))
    only = assess(dms, task, "only", IncludeOnly=["postgres-check-dbversion"])
    assert set(only) == {"run", "postgres-check-dbversion"}
    for extra, code in (
        (
            {"IncludeOnly": ["postgres-check-wallevel"]},
            "InvalidParameterValueException",
        ),  # cdc only
        ({"ResultEncryptionMode": "SSE_KMS"}, "InvalidParameterCombinationException"),
        ({"AssessmentRunName": "only"}, "ResourceAlreadyExistsFault"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            dms.start_replication_task_assessment_run(**{
                "ReplicationTaskArn": task, "ServiceAccessRoleArn": ROLE,
                "ResultLocationBucket": "target-bucket", "AssessmentRunName": "x", **extra})  # fmt: skip
        assert code_of(refused) == code
    run = dms.start_replication_task_assessment_run(
        ReplicationTaskArn=task, ServiceAccessRoleArn=ROLE, ResultLocationBucket="target-bucket",
        AssessmentRunName="cancelled",
    )["ReplicationTaskAssessmentRun"]  # fmt: skip
    status = dms.describe_replication_tasks(
        Filters=[{"Name": "replication-task-arn", "Values": [task]}]
    )["ReplicationTasks"][0]["Status"]
    assert status == "testing"  # as DMS shows a task under assessment
    with pytest.raises(botocore.exceptions.ClientError) as busy:
        dms.start_replication_task(
            ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
        )
    assert code_of(busy) == "InvalidResourceStateFault"
    arn = run["ReplicationTaskAssessmentRunArn"]
    cancelled = dms.cancel_replication_task_assessment_run(ReplicationTaskAssessmentRunArn=arn)
    assert cancelled["ReplicationTaskAssessmentRun"]["Status"] == "cancelling"
    deadline = time.monotonic() + 30
    while (
        dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-arn", "Values": [task]}]
        )["ReplicationTasks"][0]["Status"]
        == "testing"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    statuses = {a["Status"] for a in dms.describe_replication_task_individual_assessments(
        Filters=[{"Name": "replication-task-assessment-run-arn", "Values": [arn]}]
    )["ReplicationTaskIndividualAssessments"]}  # fmt: skip
    assert "cancelled" in statuses
    with pytest.raises(botocore.exceptions.ClientError) as ended:
        dms.cancel_replication_task_assessment_run(ReplicationTaskAssessmentRunArn=arn)
    assert code_of(ended) == "InvalidResourceStateFault"
    deleted = dms.delete_replication_task_assessment_run(ReplicationTaskAssessmentRunArn=arn)
    assert deleted["ReplicationTaskAssessmentRun"]["Status"] == "deleting"
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        dms.describe_replication_task_assessment_runs(
            Filters=[{"Name": "replication-task-assessment-run-arn", "Values": [arn]}]
        )
    assert code_of(gone) == "ResourceNotFoundFault"
    by_engines = dms.describe_applicable_individual_assessments(
        SourceEngineName="postgres", TargetEngineName="s3", MigrationType="cdc"
    )["IndividualAssessmentNames"]
    assert "postgres-check-select-object-privileges" not in by_engines  # a load-only check
    assert "postgres-check-wallevel" in by_engines


@pytest.fixture(scope="module")
def replica_server() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres(settings={"wal_level": "replica", "max_wal_senders": "1"}) as server:
        yield server


def test_a_source_that_cannot_stream_fails_the_cdc_assessments(dms, s3, replica_server):
    name = f"source_{secrets.token_hex(4)}"
    with psycopg.connect(replica_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    source = SourceDatabase(
        PostgresServer(replica_server.host, replica_server.port, replica_server.user,
                       replica_server.password), name,
    )  # fmt: skip
    source.execute("CREATE TABLE public.t (id int PRIMARY KEY)")
    pipeline = provision(dms, s3, source)
    task = create_task(dms, pipeline, select_rules(("public", "t")), migration_type="cdc")
    result = assess(dms, task)
    assert result["postgres-check-wallevel"] == "failed"
    assert result["postgres-check-maxwalsenders"] == "failed"
    assert result["postgres-check-pk"] == "passed"
    assert result["run"]["Status"] == "failed"
    files = read_objects(s3, "target-bucket", "assessments/preflight/")
    wal = json.loads(files["assessments/preflight/postgres-check-wallevel.json"])
    assert "wal_level is replica" in wal["message"]


def test_the_legacy_task_assessment_reports_unsupported_types_as_dms_documents(dms, s3, source_db):
    source_db.execute("CREATE SCHEMA app")
    source_db.execute("CREATE TABLE app.hosts (id int PRIMARY KEY, ip inet, seen timestamptz)")
    pipeline = provision(dms, s3, source_db)
    task = create_task(dms, pipeline, select_rules(("app", "%")))
    with pytest.raises(botocore.exceptions.ClientError) as refused:  # ready, not stopped
        dms.start_replication_task_assessment(ReplicationTaskArn=task)
    assert code_of(refused) == "InvalidResourceStateFault"
    dms.start_replication_task(
        ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
    )
    assert wait_until_finished(dms, task)["Status"] == "stopped"
    with pytest.raises(botocore.exceptions.ClientError) as untested:
        dms.start_replication_task_assessment(ReplicationTaskArn=task)
    assert "run TestConnection first" in str(untested.value)

    waiter = dms.get_waiter("test_connection_succeeds")
    for endpoint in (pipeline.source_arn, pipeline.target_arn):
        dms.test_connection(ReplicationInstanceArn=pipeline.instance_arn, EndpointArn=endpoint)
        waiter.wait(Filters=[{"Name": "endpoint-arn", "Values": [endpoint]}],
                    WaiterConfig={"Delay": 1, "MaxAttempts": 30})  # fmt: skip
    started = dms.start_replication_task_assessment(ReplicationTaskArn=task)["ReplicationTask"]
    assert started["Status"] == "testing"
    deadline = time.monotonic() + 60
    while (result := dms.describe_replication_task_assessment_results(ReplicationTaskArn=task))[
        "ReplicationTaskAssessmentResults"
    ][0]["AssessmentStatus"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (latest,) = result["ReplicationTaskAssessmentResults"]
    assert latest["AssessmentStatus"] == "warning"
    assert json.loads(latest["AssessmentResults"])["objects"] == [
        "app.hosts.ip (INET)", "app.hosts.seen (TIMESTAMP(Z))",
    ]  # fmt: skip
    bucket = result["BucketName"]
    stored = s3.get_object(Bucket=bucket, Key=latest["AssessmentResultsFile"])["Body"].read()
    # A SigV4 presigned GET of that object. (Not fetched: moto's key-checking server answers
    # query-string signatures with a 500, while AWS S3 and MinIO serve them.)
    url = urllib.parse.urlsplit(latest["S3ObjectUrl"])
    query = urllib.parse.parse_qs(url.query)
    assert url.path == f"/{bucket}/{urllib.parse.quote(latest['AssessmentResultsFile'])}"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["3600"]
    assert json.loads(stored) == json.loads(latest["AssessmentResults"])
    assert describe_task(dms, task)["Status"] == "stopped"

    listed = dms.describe_replication_task_assessment_results()["ReplicationTaskAssessmentResults"]
    assert [r["ReplicationTaskArn"] for r in listed] == [task]
    assert "AssessmentResults" not in listed[0]  # only when the request names the task
