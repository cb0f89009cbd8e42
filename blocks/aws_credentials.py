"""Create or update the ``AwsCredentials`` blocks the deployments name, idempotently.

Profiles:

* ``local`` → block ``dms-local``: the keys of the local S3 store from the environment
  (``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``: MinIO's user, or the keys ``make serve``
  prints), or placeholder keys when they are not set (localdms accepts any; an S3 that checks keys
  will refuse them); region ``us-east-1`` unless ``AWS_REGION`` says otherwise; no endpoint on the
  block, so the standard per-service variables route the clients
  (``AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE`` to localdms, ``AWS_ENDPOINT_URL_S3`` to the
  local store) in the worker's environment.
* ``aws`` → block ``dms-aws``: keys from the environment (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), or a named AWS profile (``--aws-profile``), and
  the region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``. With neither keys nor profile, the block
  uses the default credential chain of the machine that runs the flow (an instance role, say).

Example:
    >>> save_aws_credentials_block("local")  # doctest: +SKIP
    'dms-local'
    >>> os.environ.update(AWS_ACCESS_KEY_ID="minio", AWS_SECRET_ACCESS_KEY="minio-secret")
    >>> build_aws_credentials("local").aws_access_key_id
    'minio'
    >>> key_source("local")
    'keys from the environment (AWS_ACCESS_KEY_ID=minio)'

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
PLACEHOLDER_KEY_ID = "localdms"
PLACEHOLDER_SECRET = "localdms-not-a-secret"  # noqa: S105 - localdms accepts any credentials


def _environment_keys() -> tuple[str, str] | None:
    key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return (key_id, secret) if key_id and secret else None


def key_source(profile: Profile, aws_profile: str | None = None) -> str:
    """Which keys ``build_aws_credentials`` puts on the block, in words (never the secret)."""
    keys = _environment_keys()
    if aws_profile:
        return f"the AWS profile {aws_profile!r}"
    if keys:
        return f"keys from the environment (AWS_ACCESS_KEY_ID={keys[0]})"
    if profile == "local":
        return (
            "placeholder keys (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set; an S3 "
            "that checks keys will refuse them)"
        )
    return "the default AWS credential chain of the machine that runs the flow"


def build_aws_credentials(profile: Profile, aws_profile: str | None = None) -> AwsCredentials:
    """The block for ``profile`` (not saved)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if profile == "local":
        key_id, secret = _environment_keys() or (PLACEHOLDER_KEY_ID, PLACEHOLDER_SECRET)
        return AwsCredentials(
            aws_access_key_id=key_id, aws_secret_access_key=SecretStr(secret), region_name=region
        )
    if aws_profile:
        return AwsCredentials(profile_name=aws_profile, region_name=region)
    return AwsCredentials(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=SecretStr(aws_secret)
        if (aws_secret := os.environ.get("AWS_SECRET_ACCESS_KEY"))
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
    print(
        f"AwsCredentials block {name!r} saved ({args.profile} profile, "
        f"{key_source(args.profile, args.aws_profile)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
