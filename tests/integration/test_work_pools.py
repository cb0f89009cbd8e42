"""The scale-out deployments of prefect.yaml, rendered through the workers' own code: the base job
template of each pool, with the deployment's job variables (``{{ $VAR }}`` resolved as
``prefect deploy`` resolves them), prepared for a flow run as the worker prepares it. What a user
would find in the Kubernetes Job or the ECS task definition is checked: the image, the command,
the environment, and no secret in plain text. The ECS worker checks the task's VPC and subnet
with EC2 before it runs a task; moto's server answers for EC2 here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings
from prefect.utilities.templating import apply_values
from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

from sandbox.s3 import MotoS3Server
from work_pools.templates import ecs_template, kubernetes_template

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "pnu_" + "k" * 36  # what the worker's own settings hold on Prefect Cloud
CLOUD_API_URL = "https://api.prefect.cloud/api/accounts/a/workspaces/w"
ENVIRONMENT = {
    "DMS_INGESTION_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dms-ingestion:1.4.0",
    "AWS_REGION": "eu-west-1",
    "DMS_SOURCE_ENDPOINT_ARN": "arn:aws:dms:eu-west-1:123456789012:endpoint:SRC",
    "DMS_TARGET_ENDPOINT_ARN": "arn:aws:dms:eu-west-1:123456789012:endpoint:DST",
    "DMS_REPLICATION_INSTANCE_ARN": "arn:aws:dms:eu-west-1:123456789012:rep:REP",
    "DMS_ECS_CLUSTER": "data-platform",
    "DMS_ECS_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/dms-ingestion-task",
    "DMS_ECS_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/dms-ingestion-execution",
    "DMS_PREFECT_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prefect",
    "DMS_ECS_SECURITY_GROUP_ID": "sg-0def",
}


def job_variables(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The deployment's job variables as ``prefect deploy`` sends them (environment applied)."""
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    deployment = next(d for d in deployments if d["name"] == name)
    variables: dict[str, Any] = apply_values(deployment["work_pool"]["job_variables"], {})
    return variables


def flow_run() -> FlowRun:
    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), deployment_id=uuid.uuid4(), name="run")


async def prepared(
    kind: Any, template: dict[str, Any], variables: dict[str, Any], run: FlowRun
) -> Any:
    """The pool's job configuration for ``run``, as a worker on Prefect Cloud prepares it (its
    settings hold the API URL and key)."""
    with temporary_settings({PREFECT_API_URL: CLOUD_API_URL, PREFECT_API_KEY: API_KEY}):
        configuration = await kind.from_template_and_values(template, variables)
        configuration.prepare_for_flow_run(run)
    return configuration


def check_environment(env: dict[str, str]) -> None:
    for key in ("DMS_SOURCE_ENDPOINT_ARN", "DMS_TARGET_ENDPOINT_ARN", "DMS_REPLICATION_INSTANCE_ARN",
                "AWS_REGION"):  # fmt: skip
        assert env[key] == ENVIRONMENT[key]
    assert env["PREFECT_API_URL"] == CLOUD_API_URL
    assert "PREFECT__FLOW_RUN_ID" in env


async def test_the_kubernetes_job_runs_the_image_with_secrets_from_the_cluster(monkeypatch):
    variables = job_variables("kubernetes", monkeypatch)
    run = flow_run()
    configuration = await prepared(
        KubernetesWorkerJobConfiguration, kubernetes_template(), variables, run
    )
    # What the worker does before creating the Job when the API key lives in a Secret
    # (PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME / _KEY on the worker).
    await KubernetesWorker(work_pool_name="dms-kubernetes")._replace_api_key_with_secret(
        configuration, client=None, secret_name="prefect-api-key", secret_key="key"
    )  # type: ignore[arg-type]

    manifest = configuration.job_manifest
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (manifest["kind"], manifest["metadata"]["namespace"]) == ("Job", "dms-ingestion")
    assert container["image"] == ENVIRONMENT["DMS_INGESTION_IMAGE"]
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert pod["serviceAccountName"] == "dms-ingestion"  # AWS access through the pod's role
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"cpu": "1", "memory": "2Gi"}}  # fmt: skip
    assert container["envFrom"] == [{"secretRef": {"name": "dms-ingestion", "optional": True}}]
    env = {e["name"]: e for e in container["env"]}
    check_environment({name: e["value"] for name, e in env.items() if "value" in e})
    assert env["PREFECT_API_KEY"] == {
        "name": "PREFECT_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "prefect-api-key", "key": "key"}},
    }
    assert API_KEY not in json.dumps(manifest)


@pytest.fixture
def ec2_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A VPC and a subnet in moto's EC2, which the ECS worker's boto3 clients reach."""
    with MotoS3Server(check_keys=False) as moto:  # moto's server answers EC2 as well as S3
        monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto.url)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the worker's region
        ec2 = boto3.client("ec2", endpoint_url=moto.url, region_name="eu-west-1")
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
        yield vpc, subnet


async def test_the_ecs_task_runs_the_image_with_its_roles_and_the_key_from_secrets_manager(
    monkeypatch, ec2_network
):
    vpc, subnet = ec2_network
    monkeypatch.setenv("DMS_ECS_VPC_ID", vpc)
    monkeypatch.setenv("DMS_ECS_SUBNET_ID", subnet)
    variables = job_variables("ecs", monkeypatch)
    run = flow_run()
    configuration = await prepared(ECSJobConfiguration, ecs_template(), variables, run)
    worker = ECSWorker(work_pool_name="dms-ecs")
    task_definition = worker._prepare_task_definition(configuration, "eu-west-1", run)
    request = worker._prepare_task_run_request(
        configuration, task_definition, "arn:aws:ecs:eu-west-1:123456789012:task-definition/d:1",
        new_task_definition_registered=True,
    )  # fmt: skip

    container = task_definition["containerDefinitions"][0]
    assert container["image"] == ENVIRONMENT["DMS_INGESTION_IMAGE"]
    assert container["secrets"] == [
        {"name": "PREFECT_API_KEY", "valueFrom": ENVIRONMENT["DMS_PREFECT_API_KEY_SECRET_ARN"]}
    ]
    assert task_definition["executionRoleArn"] == ENVIRONMENT["DMS_ECS_EXECUTION_ROLE_ARN"]
    assert (task_definition["cpu"], task_definition["memory"]) == ("1024", "2048")
    assert task_definition["requiresCompatibilities"] == ["FARGATE"]
    override = request["overrides"]["containerOverrides"][0]
    assert override["command"] == ["prefect", "flow-run", "execute"]
    assert request["overrides"]["taskRoleArn"] == ENVIRONMENT["DMS_ECS_TASK_ROLE_ARN"]
    assert request["cluster"] == "data-platform"
    assert request["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": [subnet],
        "securityGroups": ["sg-0def"],
        "assignPublicIp": "DISABLED",
    }  # the worker found the subnet in the VPC (EC2)
    env = {e["name"]: e["value"] for e in override["environment"]}
    check_environment(env)
    assert "PREFECT_API_KEY" not in env
    assert API_KEY not in json.dumps([task_definition, request])


def test_the_printed_templates_are_the_ones_rendered():
    import subprocess
    import sys

    printed = subprocess.run(
        [sys.executable, "-m", "work_pools", "kubernetes"], capture_output=True, text=True,
        check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert json.loads(printed) == kubernetes_template()
