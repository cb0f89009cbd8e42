"""Bad input the flow refuses before it creates anything, or reports in DMS's words where only
DMS (AWS) can tell. The whole catalogue, with the test of each case, is docs/bad-input.md."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from flows import dms_ingestion
from flows.dms_hook import DmsHook
from flows.exceptions import CredentialsError, DmsApiError

pytestmark = pytest.mark.integration

UNKNOWN_ENDPOINT = (
    "arn:aws:dms:us-east-1:123456789012:endpoint:NOSUCHENDPOINTAAAAAAAAAAAAAAAAAAAAAAAAA"
)


async def test_missing_credentials_block_is_named_before_anything_is_created(job, dms):
    with pytest.raises(CredentialsError, match=r"'no-such-block' was not found.*python -m blocks"):
        await dms_ingestion(config_path=str(job), aws_credentials_block="no-such-block")
    assert dms.describe_replication_tasks(Filters=[])["ReplicationTasks"] == []


async def test_unknown_endpoint_arn_fails_with_dms_words_and_creates_nothing(job, dms, monkeypatch):
    monkeypatch.setenv("DMS_SOURCE_ENDPOINT_ARN", UNKNOWN_ENDPOINT)
    with pytest.raises(DmsApiError) as excinfo:
        await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)
    message = str(excinfo.value)
    assert "ResourceNotFoundFault" in message
    assert "DMS_SOURCE_ENDPOINT_ARN" in message  # what to check
    assert dms.describe_replication_tasks(Filters=[])["ReplicationTasks"] == []


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        ("UnrecognizedClientException", "check the AwsCredentials block's keys"),
        ("InvalidSignatureException", "aws_secret_access_key"),
        ("AccessDeniedException", "IAM policy of docs/aws/index.md"),
    ],
)
def test_credentials_only_aws_can_refuse_say_what_to_fix(code, fix):
    """localdms accepts any keys (it is a local tool), so AWS's refusals are stubbed: the edge of
    what cannot run here."""
    client = boto3.client(
        "dms", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_replication_tasks", code, "The security token is invalid.", 400
        )
        with pytest.raises(DmsApiError) as excinfo:
            DmsHook(client).find_task("postgres-migration-test")
    assert code in str(excinfo.value)
    assert fix in str(excinfo.value)
