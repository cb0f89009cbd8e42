"""Prefect block documents the deployments use: ``AwsCredentials`` per profile."""

from blocks.aws_credentials import BLOCK_NAMES, save_aws_credentials_block

__all__ = ["BLOCK_NAMES", "save_aws_credentials_block"]
