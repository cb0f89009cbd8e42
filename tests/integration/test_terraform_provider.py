"""The real Terraform AWS provider against localdms: a PostgreSQL source endpoint, an S3 target
endpoint with a BucketFolder, a replication instance, a started full-load task and an event
subscription to an SNS topic on moto, applied;
a second plan finds no difference (localdms reads resources back as AWS does); the rows are in
the key-checking S3 under the folder; destroy removes everything.

Needs ``terraform`` and the provider in a filesystem mirror (``TF_PROVIDER_MIRROR``, default
``/opt/tf-plugins``): no registry is reachable here. Slow by Terraform's own waits (30 s before
its first look at a created instance, a ready task, a started task), so it is marked ``e2e``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localdms.server import ThreadedLocalDms
from sandbox.s3 import MotoS3Server
from tests.conftest import SourceDatabase

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PROVIDER = "5.100.0"
MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
TERRAFORM = shutil.which("terraform")
if TERRAFORM is None or not (MIRROR / "registry.terraform.io/hashicorp/aws" / PROVIDER).is_dir():
    pytest.skip(
        f"needs terraform and hashicorp/aws {PROVIDER} under {MIRROR} (no registry here)",
        allow_module_level=True,
    )

CLI_CONFIG = f"""
provider_installation {{
  filesystem_mirror {{
    path    = "{MIRROR}"
    include = ["registry.terraform.io/hashicorp/aws"]
  }}
  direct {{ exclude = ["registry.terraform.io/hashicorp/aws"] }}
}}
"""

STACK = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "%(provider)s" }
  }
}
provider "aws" {
  region                      = "us-east-1"
  access_key                  = "%(key)s"
  secret_key                  = "%(secret)s"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {
    dms = "%(dms)s"
    s3  = "%(s3)s"
    sts = "%(s3)s"
  }
}
resource "aws_dms_replication_instance" "this" {
  replication_instance_id    = "tf-instance"
  replication_instance_class = "dms.t3.micro"
  allocated_storage          = 50
  apply_immediately          = true
}
resource "aws_dms_endpoint" "source" {
  endpoint_id   = "tf-source"
  endpoint_type = "source"
  engine_name   = "postgres"
  server_name   = "%(host)s"
  port          = %(port)d
  database_name = "%(database)s"
  username      = "%(user)s"
  password      = "%(password)s"
  ssl_mode      = "none"
}
resource "aws_dms_s3_endpoint" "target" {
  endpoint_id             = "tf-target"
  endpoint_type           = "target"
  bucket_name             = "tf-bucket"
  bucket_folder           = "raw"
  service_access_role_arn = "arn:aws:iam::123456789012:role/dms-s3"
}
resource "aws_dms_replication_task" "this" {
  replication_task_id      = "tf-task"
  migration_type           = "full-load"
  replication_instance_arn = aws_dms_replication_instance.this.replication_instance_arn
  source_endpoint_arn      = aws_dms_endpoint.source.endpoint_arn
  target_endpoint_arn      = aws_dms_s3_endpoint.target.endpoint_arn
  start_replication_task   = true
  table_mappings = jsonencode({ rules = [{
    "rule-type" = "selection", "rule-id" = "1", "rule-name" = "app",
    "object-locator" = { "schema-name" = "app", "table-name" = "%%" },
    "rule-action" = "include"
  }] })
}
resource "aws_dms_event_subscription" "this" {
  name             = "tf-task-events"
  enabled          = true
  sns_topic_arn    = "%(topic)s"
  source_type      = "replication-task"
  source_ids       = ["tf-task"]
  event_categories = ["state change", "failure"]
  tags             = { team = "data" }
}
"""


@pytest.fixture
def terraform_dms(
    tmp_path: Path, s3_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadedLocalDms]:
    """localdms as Terraform needs it: its start_replication_task looks for ``running`` 30 s
    after the start, so a load shows running for 45 s at least (the advice of docs/localdms/index.md).
    Its event subscriptions check their topics on moto's SNS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", s3_server.url)
    with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.5,
                          min_running_seconds=45) as server:  # fmt: skip
        yield server


def terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    environment = {**os.environ, "TF_CLI_CONFIG_FILE": str(workdir / "cli.tfrc"),
                   "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}  # fmt: skip
    return subprocess.run(
        [TERRAFORM, f"-chdir={workdir}", *args, "-input=false", "-no-color"],
        capture_output=True, text=True, env=environment, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.timeout(900)
def test_terraform_applies_plans_no_change_loads_and_destroys(
    tmp_path: Path, terraform_dms: ThreadedLocalDms, s3_server: MotoS3Server,
    source_db: SourceDatabase,
) -> None:  # fmt: skip
    source_db.execute("CREATE SCHEMA app")
    source_db.execute("CREATE TABLE app.t (id int PRIMARY KEY, note text)")
    source_db.execute("INSERT INTO app.t SELECT n, 'x' || n FROM generate_series(1, 1000) n")
    s3: Any = boto3.client("s3", **s3_server.client_arguments())
    s3.create_bucket(Bucket="tf-bucket")
    sns: Any = boto3.client("sns", **s3_server.client_arguments())
    topic = sns.create_topic(Name="tf-dms-events")["TopicArn"]
    server = source_db.server
    (tmp_path / "cli.tfrc").write_text(CLI_CONFIG)
    (tmp_path / "main.tf").write_text(STACK % {
        "provider": PROVIDER, "key": s3_server.access_key_id, "secret": s3_server.secret_access_key,
        "dms": terraform_dms.url, "s3": s3_server.url, "host": server.host, "port": server.port,
        "database": source_db.name, "user": server.user, "password": server.password,
        "topic": topic,
    })  # fmt: skip

    for step in (("init",), ("apply", "-auto-approve")):
        result = terraform(tmp_path, *step)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Read back as AWS answers: nothing to change (exit code 0, not 2).
    plan = terraform(tmp_path, "plan", "-detailed-exitcode")
    assert plan.returncode == 0, plan.stdout[-5000:]

    objects = s3.list_objects_v2(Bucket="tf-bucket", Prefix="raw/")["Contents"]
    assert [o["Key"] for o in objects] == ["raw/app/t/LOAD00000001.csv"]
    body = s3.get_object(Bucket="tf-bucket", Key=objects[0]["Key"])["Body"].read()
    assert len(body.splitlines()) == 1000
    state = json.loads((tmp_path / "terraform.tfstate").read_text())
    task = next(r for r in state["resources"] if r["type"] == "aws_dms_replication_task")
    assert task["instances"][0]["attributes"]["status"] in ("running", "stopped")
    subscription = next(r for r in state["resources"] if r["type"] == "aws_dms_event_subscription")[
        "instances"
    ][0]["attributes"]
    assert subscription["arn"] == "arn:aws:dms:us-east-1:123456789012:es:tf-task-events"
    assert (subscription["source_ids"], subscription["tags_all"]) == (["tf-task"], {"team": "data"})

    destroyed = terraform(tmp_path, "destroy", "-auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr[-3000:]
    dms: Any = boto3.client("dms", endpoint_url=terraform_dms.url, region_name="us-east-1")
    assert dms.describe_replication_tasks()["ReplicationTasks"] == []
    assert dms.describe_endpoints()["Endpoints"] == []
    assert dms.describe_event_subscriptions()["EventSubscriptionsList"] == []
