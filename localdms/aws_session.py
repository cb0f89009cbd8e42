"""AWS sessions for the clients localdms makes (S3, CloudWatch, EventBridge, SNS, Secrets
Manager), from the standard AWS configuration, read when the session is made.

Each client gets a new session, so credentials and ``AWS_ENDPOINT_URL_*`` are read at that
moment (tests and users change them between runs), but every session shares one loader of
botocore's service models: a fresh session parses a model's JSON again (~0.1 s for S3, at each
task start).

Example:
    >>> aws_session().client("s3", region_name="us-east-1").meta.service_model.service_name
    's3'
"""

from __future__ import annotations

import boto3
import botocore.loaders
import botocore.session

_MODELS = botocore.loaders.create_loader()


def aws_session() -> boto3.session.Session:
    """A new session sharing the process's loader of service models."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _MODELS)
    return boto3.session.Session(botocore_session=core)
