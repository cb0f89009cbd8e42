"""moto's S3 server as a subprocess on a free loopback port, checking access keys as S3 does.

A separate process, so that its CPU use does not compete with the code under test for the GIL.
Once started, the server authenticates every request (moto's ``reset-auth``, the server form of
``INITIAL_NO_AUTH_ACTION_COUNT``): only the IAM user's keys it made at start (``access_key_id``,
``secret_access_key``; ``credentials()`` gives them as environment variables) are accepted, so a
client with the wrong keys fails with S3's ``InvalidAccessKeyId`` or ``SignatureDoesNotMatch``
instead of passing. ``reset`` empties S3 through the API between tests (moto's own reset would
also forget the IAM user). A server started again (``stop`` then ``start``, as the fault tests do)
has the same keys: moto's ids are drawn from a generator seeded per server.

Example:
    >>> with MotoS3Server() as server:  # doctest: +SKIP
    ...     s3 = boto3.client("s3", endpoint_url=server.url, **server.client_arguments())
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from sandbox.errors import StackStartError, last_lines, refuse_taken_port
from sandbox.ports import free_port, stop_process

USER_NAME = "dms-ingestion-tests"
LAKE_GLUE_ACTIONS = [
    "glue:GetDatabase", "glue:CreateDatabase", "glue:GetTable", "glue:CreateTable",
    "glue:UpdateTable",
]  # fmt: skip
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        # moto checks CloudWatch's actions under its endpoint prefix, monitoring:, where IAM
        # names them cloudwatch:
        {"Effect": "Allow", "Action": ["cloudwatch:*", "monitoring:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["events:*", "sns:*", "sqs:*"], "Resource": "*"},
        # The lake on the Glue Data Catalog: exactly the actions docs/lake.md lists.
        {"Effect": "Allow", "Action": LAKE_GLUE_ACTIONS, "Resource": "*"},
    ],
}
"""What the user may do: S3, Secrets Manager (endpoints whose credentials are a secret),
CloudWatch (the metrics localdms publishes), EventBridge and SNS (its events and
notifications), SQS (the queues they are read from) and Glue (the lake's catalog): moto's server
answers them all."""


def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create the bucket unless it is there (a re-run on the same S3 keeps what it holds).

    Raises:
        StackStartError: the S3 endpoint does not answer (the message names it).
    """
    import botocore.exceptions

    try:
        s3.head_bucket(Bucket=bucket)
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
    ) as exc:
        raise StackStartError(
            f"The S3 endpoint {s3.meta.endpoint_url} does not answer ({exc}). Check the URL and "
            "that the store (MinIO, say) is running and reachable from here, or leave "
            "--s3-endpoint out to use a throwaway moto server."
        ) from None
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        s3.create_bucket(Bucket=bucket)


def moto_server_executable() -> str:
    """The ``moto_server`` of this interpreter's environment (not another one on PATH)."""
    return str(Path(sys.executable).parent / "moto_server")


class MotoS3Server:
    """Start ``moto_server`` on 127.0.0.1; ``url`` is its endpoint.

    Args:
        port: the port (a free one by default).
        check_keys: authenticate requests with the IAM user's keys (the default); False serves
            anyone, as moto does by default.
    """

    def __init__(self, port: int | None = None, check_keys: bool = True) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.check_keys = check_keys
        self.access_key_id = "any"
        self.secret_access_key = "any"  # noqa: S105 - replaced by the IAM user's key at start
        self._seed = secrets.randbelow(2**31)
        self._process: subprocess.Popen[bytes] | None = None
        self._output: collections.deque[bytes] = collections.deque()

    def start(self, timeout: float = 60.0) -> MotoS3Server:
        """Start the server and wait until it answers.

        Raises:
            StackStartError: the port is taken, the server exited, or it did not answer in time.
        """
        refuse_taken_port("moto's S3 server", self.port)
        # Its output (a line per request) is read as it comes, keeping only the last lines,
        # which explain a start that failed: a file would grow for as long as it serves, and a
        # pipe nobody reads would fill and stop the server.
        self._process = subprocess.Popen(
            [moto_server_executable(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, self._output = self._process.stdout, collections.deque(maxlen=20)
        threading.Thread(target=self._output.extend, args=(output,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise StackStartError(
                    f"moto's S3 server did not start: moto_server exited with {code}; its last "
                    f"words:{self._log_tail()}\nFix what they name (`uv sync --extra local` "
                    "installs it), or use another S3 with --s3-endpoint."
                )
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        else:
            tail = self._log_tail()
            self.stop()
            raise StackStartError(
                f"moto's S3 server did not start: no answer on {self.url} within {timeout} s; its "
                f"last words:{tail}\nThe machine may be overloaded: try again."
            )
        if self.check_keys:
            self._moto_api(f"seed?a={self._seed}", b"")  # the same keys on every start
            self._create_user()
            self._moto_api("reset-auth", b"0")  # from now on, every request is authenticated
        return self

    def _create_user(self) -> None:
        """An IAM user allowed S3, and its access key (made while the server serves anyone)."""
        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",  # noqa: S106 - accepted before auth is on
        )
        iam.create_user(UserName=USER_NAME)
        iam.put_user_policy(UserName=USER_NAME, PolicyName="s3", PolicyDocument=json.dumps(POLICY))
        key = iam.create_access_key(UserName=USER_NAME)["AccessKey"]
        if self.access_key_id != "any" and key["AccessKeyId"] != self.access_key_id:
            raise RuntimeError("moto_server made other keys on this restart; clients would fail")
        self.access_key_id = key["AccessKeyId"]
        self.secret_access_key = key["SecretAccessKey"]

    def credentials(self) -> dict[str, str]:
        """The keys as the standard AWS environment variables."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def client_arguments(self) -> dict[str, Any]:
        """boto3 client arguments for this server's keys and endpoint."""
        return {
            "endpoint_url": self.url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "region_name": os.environ.get("AWS_REGION", "us-east-1"),
        }

    def reset(self) -> None:
        """Delete every bucket with its objects and unfinished uploads (the keys stay)."""
        s3 = boto3.client("s3", **self.client_arguments())
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            for uploads in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
                for upload in uploads.get("Uploads", []):
                    s3.abort_multipart_upload(
                        Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys: list[Any] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
            s3.delete_bucket(Bucket=name)

    def _moto_api(self, path: str, data: bytes) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/{path}",
            data=data,
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _log_tail(self, lines: int = 8) -> str:
        text = b"".join(list(self._output)).decode(errors="replace")
        return last_lines(text, lines)

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
