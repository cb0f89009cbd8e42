"""Create or update the ``AwsCredentials`` blocks the deployments name, idempotently.

Profiles:

* ``local`` → block ``dms-local``: dummy keys and region ``us-east-1``, no endpoint on the block,
  so the standard per-service variables route the clients (``AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE``
  to localdms, ``AWS_ENDPOINT_URL_S3`` to the local store) in the worker's environment.
* ``aws`` → block ``dms-aws``: keys from the environment (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), or a named AWS profile (``--aws-profile``), and
  the region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``. With neither keys nor profile, the block
  uses the default credential chain of the machine that runs the flow (an instance role, say).

Example:
    >>> save_aws_credentials_block("local")  # doctest: +SKIP
    'dms-local'

Command line: ``python -m blocks --profile local`` (or ``--profile aws [--aws-profile NAME]``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Literal

from prefect_aws import AwsCredentials
from pydantic import SecretStr

Profile = Literal["local", "aws"]
BLOCK_NAMES: dict[str, str] = {"local": "dms-local", "aws": "dms-aws"}
LOCAL_KEY_ID = "localdms"
LOCAL_SECRET = "localdms-not-a-secret"  # noqa: S105 - localdms accepts any credentials


def build_aws_credentials(profile: Profile, aws_profile: str | None = None) -> AwsCredentials:
    """The block for ``profile`` (not saved)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if profile == "local":
        return AwsCredentials(
            aws_access_key_id=LOCAL_KEY_ID,
            aws_secret_access_key=SecretStr(LOCAL_SECRET),
            region_name=region,
        )
    if aws_profile:
        return AwsCredentials(profile_name=aws_profile, region_name=region)
    return AwsCredentials(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=SecretStr(secret)
        if (secret := os.environ.get("AWS_SECRET_ACCESS_KEY"))
        else None,
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
        region_name=region,
    )


def save_aws_credentials_block(
    profile: Profile, name: str | None = None, aws_profile: str | None = None
) -> str:
    """Create or overwrite the profile's block on the Prefect server; return its name."""
    block_name = name or BLOCK_NAMES[profile]
    build_aws_credentials(profile, aws_profile).save(block_name, overwrite=True)
    return block_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blocks", description="Create the AwsCredentials blocks."
    )
    parser.add_argument("--profile", choices=sorted(BLOCK_NAMES), required=True)
    parser.add_argument("--name", help="block name (default dms-local / dms-aws)")
    parser.add_argument(
        "--aws-profile", help="for --profile aws: a named AWS profile instead of keys"
    )
    args = parser.parse_args(argv)
    name = save_aws_credentials_block(args.profile, args.name, args.aws_profile)
    print(f"AwsCredentials block {name!r} saved ({args.profile} profile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
