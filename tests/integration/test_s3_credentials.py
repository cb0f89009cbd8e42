"""Every part signs with real keys: the tests' S3 checks access keys as S3 and MinIO do, so a
block, a flow or localdms with the wrong keys fails here, with an error that says what to change,
instead of passing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from prefect_aws import AwsCredentials
from pydantic import SecretStr

from flows import dms_ingestion
from flows.exceptions import S3AccessError
from tests.pipeline import create_task, provision, run_task, select_rules

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_s3_of_the_tests_refuses_keys_it_does_not_know(s3_server, s3):
    s3.create_bucket(Bucket="postgres-repo")
    for key_id, code in (("AKIAWRONGKEY", "InvalidAccessKeyId"),
                         (s3_server.access_key_id, "SignatureDoesNotMatch")):  # fmt: skip
        other = boto3.client(
            "s3", endpoint_url=s3_server.url, aws_access_key_id=key_id,
            aws_secret_access_key="not-the-secret", region_name="us-east-1",
        )  # fmt: skip
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            other.list_objects_v2(Bucket="postgres-repo")
        assert refused.value.response["Error"]["Code"] == code
    assert s3.list_objects_v2(Bucket="postgres-repo")["KeyCount"] == 0  # the right keys work


async def test_a_block_with_the_wrong_keys_fails_the_flow_saying_what_to_fix(job):
    await AwsCredentials(
        aws_access_key_id="AKIAWRONGKEY",
        aws_secret_access_key=SecretStr("not-the-secret"),
        region_name="us-east-1",
    ).save("wrong-keys", overwrite=True)

    with pytest.raises(S3AccessError) as failed:
        await dms_ingestion(
            config_path=str(job), aws_credentials_block="wrong-keys", poll_interval_seconds=0.2
        )

    message = str(failed.value)
    assert "s3://postgres-repo/bookings/" in message  # where it was reading
    assert "InvalidAccessKeyId" in message
    assert "give the AwsCredentials block the keys of the S3 store" in message
    assert "not-the-secret" not in message


async def test_the_local_profile_takes_the_environments_keys_and_the_flow_succeeds(job, s3_server):
    saved = subprocess.run(
        [sys.executable, "-m", "blocks", "--profile", "local", "--name", "env-keys"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"keys from the environment (AWS_ACCESS_KEY_ID={s3_server.access_key_id})" in (
        saved.stdout
    )
    assert s3_server.secret_access_key not in saved.stdout + saved.stderr

    report = await dms_ingestion(
        config_path=str(job), aws_credentials_block="env-keys", poll_interval_seconds=0.2
    )

    assert report.succeeded, report.failure_message()
    assert report.s3_verification.checked
    assert report.s3_verification.ok


def test_localdms_with_the_wrong_keys_fails_the_task_saying_whose_keys(
    dms, s3, source_db, monkeypatch
):
    source_db.execute("CREATE TABLE public.t AS SELECT g AS id FROM generate_series(1, 10) g")
    pipeline = provision(dms, s3, source_db, bucket="postgres-repo")
    arn = create_task(dms, pipeline, select_rules(("public", "t")))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGKEY")  # the keys localdms's run signs with

    task = run_task(dms, arn)

    assert task["Status"] == "failed"
    message = task["LastFailureMessage"]
    assert (
        "S3 refused localdms's credentials for bucket 'postgres-repo': InvalidAccessKeyId"
        in message
    )
    assert "AWS_ACCESS_KEY_ID" in message
