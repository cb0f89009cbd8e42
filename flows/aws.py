"""AWS clients for the flow, always from a prefect-aws ``AwsCredentials`` block.

``get_client`` applies the block's region, endpoint and botocore config; with no ``endpoint_url``
on the block, boto3's standard per-service variables apply (``AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE``,
``AWS_ENDPOINT_URL_S3``), so one block serves localdms and AWS alike. Only the block's *name* ever
travels as a parameter: Prefect stores and shows parameters in the UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect_aws import AwsCredentials

from flows.dms_hook import DmsHook
from flows.exceptions import CredentialsError


async def load_aws_credentials(block_name: str | None) -> AwsCredentials:
    """The named block, or one that uses the default AWS credential chain when None.

    Raises:
        CredentialsError: no such block (the message says how to create one).
    """
    if not block_name:
        return AwsCredentials()
    try:
        credentials: AwsCredentials = await AwsCredentials.aload(block_name)
    except ValueError as exc:
        raise CredentialsError(
            f"AwsCredentials block {block_name!r} was not found on the Prefect server. Create it "
            "(`python -m blocks --profile local` or `--profile aws`) or list the existing ones "
            "with `prefect block ls`."
        ) from exc
    return credentials


@dataclass(frozen=True)
class AwsClients:
    """The clients of one flow run, made once from one load of the block."""

    dms: DmsHook
    s3: Any


async def aws_clients(block_name: str | None) -> AwsClients:
    """A ``DmsHook`` on the block's ``dms`` client and the block's ``s3`` client.

    Raises:
        CredentialsError: no such block.
    """
    credentials = await load_aws_credentials(block_name)
    return AwsClients(DmsHook(credentials.get_client("dms")), credentials.get_client("s3"))
