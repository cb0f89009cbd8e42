"""The preflight: a DMS premigration assessment run before the task starts (``preflight``).

With ``warn`` (the default) the findings are published and the run goes on; with ``fail`` a
failed assessment stops the run before anything is loaded. The assessment is DMS's own, so it is
the same check on AWS and offline: its statuses come from
DescribeReplicationTaskIndividualAssessments, the tables and columns each names from its result
file in S3 (``<name>.json`` beside ``summary.json``), read best effort (DMS does not publish
those files' schema; a file it cannot read leaves the finding without objects).

- A replication task: StartReplicationTaskAssessmentRun before the start (``run_preflight``).
  The role DMS assumes to write the results is the target endpoint's ServiceAccessRoleArn unless
  ``preflight_role_arn`` says otherwise, and the bucket the target endpoint's unless
  ``preflight_bucket`` does: DMS already knows both.
- A DMS Serverless replication: StartReplication itself takes the assessment
  (``serverless_assessment_settings``: FailOnAssessmentFailure is ``preflight == fail``), and
  ``serverless_preflight`` waits for it in DescribeReplications' PremigrationAssessmentStatuses;
  DMS Serverless picks the results bucket and says which, and the results are looked for under
  the run's own folder (the API gives no run name).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions
from prefect import get_run_logger, task
from prefect.artifacts import acreate_table_artifact

from dms_spec.assessments import AssessmentStatus, RunStatus
from flows.config import DmsIngestionConfig
from flows.dms_hook import DmsHook
from flows.exceptions import DmsApiError, PreflightFailedError
from flows.report import Preflight, PreflightFinding
from flows.target import TargetEndpoint
from flows.tasks import RETRYABLE

RUNNING = ("starting", "provisioning", "running")
POLL_SECONDS = 1.0


def _skipped(config: DmsIngestionConfig, why: str) -> Preflight:
    if config.preflight == "fail":
        raise PreflightFailedError(f"preflight is fail, but the assessment cannot run: {why}")
    get_run_logger().warning("Preflight skipped: %s", why)
    return Preflight(mode=config.preflight, status="skipped", detail=why)


def _result_objects(s3: Any, bucket: str, key: str) -> tuple[str, list[str]]:
    """The message and objects of one result file ("", [] when it cannot be read as such)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        document = json.loads(body)
    except (botocore.exceptions.ClientError, ValueError):
        return "", []
    if not isinstance(document, dict):
        return "", []
    objects = document.get("objects")
    return str(document.get("message") or ""), [str(o) for o in objects] if isinstance(
        objects, list
    ) else []


@task(name="preflight-assessment", **RETRYABLE)
async def run_preflight(
    task_arn: str, config: DmsIngestionConfig, target: TargetEndpoint, hook: DmsHook, s3: Any
) -> Preflight:
    """Run the task's premigration assessment, wait for it, publish its findings.

    Raises:
        PreflightFailedError: ``preflight`` is ``fail`` and an assessment failed, the run ended
            in error, timed out, or could not start (nothing was started).
    """
    logger = get_run_logger()
    role = config.preflight_role_arn or target.service_access_role_arn
    if not role:
        return _skipped(config, (
            "DMS needs a role to write the assessment results, and the target endpoint has no "
            "ServiceAccessRoleArn: set preflight_role_arn (a role DMS can assume with write "
            "access to the results bucket), or preflight: off."
        ))  # fmt: skip
    bucket = config.preflight_bucket or target.bucket
    folder = config.preflight_folder.strip("/")
    name = f"dms-ingestion-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}"
    try:
        run = await asyncio.to_thread(
            hook.start_assessment_run, ReplicationTaskArn=task_arn, ServiceAccessRoleArn=role,
            ResultLocationBucket=bucket, ResultLocationFolder=folder, AssessmentRunName=name,
        )  # fmt: skip
    except DmsApiError as exc:
        return _skipped(config, f"StartReplicationTaskAssessmentRun: {exc}")
    arn = run["ReplicationTaskAssessmentRunArn"]
    prefix = f"{folder + '/' if folder else ''}{name}/"
    location = f"s3://{bucket}/{prefix}"
    logger.info("Preflight: premigration assessment %s started (results in %s)", name, location)

    def describe() -> dict[str, Any]:
        return hook.describe_assessment_run(arn)

    return await _conclude(config, hook, s3, arn, run, describe, bucket, prefix, name,
                           f"replication task {config.dms_task_name} was not started")  # fmt: skip


def serverless_assessment_settings(config: DmsIngestionConfig) -> tuple[str, str] | None:
    """StartReplication's PremigrationAssessmentSettings for ``preflight`` (None when off),
    and the folder the results go to (one per flow run)."""
    if config.preflight == "off":
        return None
    folder = "/".join(
        part for part in (config.preflight_folder.strip("/"),
                          f"dms-ingestion-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}") if part
    )  # fmt: skip
    settings = {"ResultLocationFolder": folder,
                "FailOnAssessmentFailure": config.preflight == "fail"}  # fmt: skip
    return json.dumps(settings), folder


@task(name="preflight-assessment", **RETRYABLE)
async def serverless_preflight(
    arn: str, folder: str, config: DmsIngestionConfig, hook: DmsHook, s3: Any
) -> Preflight:
    """Wait for the premigration assessment StartReplication began, publish its findings.

    Raises:
        PreflightFailedError: ``preflight`` is ``fail`` and the assessment failed (DMS did not
            start the replication), or it timed out.
    """

    def describe() -> dict[str, Any]:
        statuses = hook.describe_replication(arn).get("PremigrationAssessmentStatuses") or []
        if not statuses:
            return {"Status": "starting"}
        newest = dict(statuses[0])
        newest["ReplicationTaskAssessmentRunArn"] = newest.get("PremigrationAssessmentRunArn")
        return newest

    run = await asyncio.to_thread(describe)
    deadline = time.monotonic() + config.preflight_timeout_seconds
    while not run.get("ReplicationTaskAssessmentRunArn"):
        if time.monotonic() > deadline:
            raise PreflightFailedError(
                f"Preflight failed: DMS Serverless showed no premigration assessment for "
                f"{config.dms_task_name} within {config.preflight_timeout_seconds:.0f} s."
            )
        await asyncio.sleep(POLL_SECONDS)
        run = await asyncio.to_thread(describe)
    bucket = str(run.get("ResultLocationBucket") or "")
    get_run_logger().info(
        "Preflight: premigration assessment of %s started (results in s3://%s/%s/)",
        config.dms_task_name, bucket, folder,
    )  # fmt: skip
    return await _conclude(
        config, hook, s3, str(run["ReplicationTaskAssessmentRunArn"]), run, describe, bucket,
        f"{folder}/", folder.rsplit("/", 1)[-1],
        f"DMS Serverless did not start replication {config.dms_task_name}",
        search_under_prefix=True,
    )  # fmt: skip


async def _conclude(
    config: DmsIngestionConfig,
    hook: DmsHook,
    s3: Any,
    arn: str,
    run: dict[str, Any],
    describe: Any,
    bucket: str,
    prefix: str,
    name: str,
    not_started: str,
    search_under_prefix: bool = False,
) -> Preflight:
    """Wait for the run, read its findings, publish them; raise under ``fail``."""
    logger = get_run_logger()
    location = f"s3://{bucket}/{prefix}"
    deadline = time.monotonic() + config.preflight_timeout_seconds
    while run["Status"] in RUNNING:
        if time.monotonic() > deadline:
            detail = (f"the assessment run {name} was still {run['Status']} after "
                      f"{config.preflight_timeout_seconds:.0f} s (preflight_timeout_seconds)")  # fmt: skip
            if config.preflight == "fail":
                raise PreflightFailedError(f"Preflight failed: {detail}; nothing was started.")
            logger.warning("Preflight: %s; going on without it", detail)
            return Preflight(mode=config.preflight, status=run["Status"], run_arn=arn,
                             result_location=location, detail=detail)  # fmt: skip
        await asyncio.sleep(POLL_SECONDS)
        run = await asyncio.to_thread(describe)
    individual = await asyncio.to_thread(hook.individual_assessments, arn)
    files = (
        await asyncio.to_thread(_result_files, s3, bucket, prefix) if search_under_prefix else {}
    )
    findings = []
    for item in sorted(individual, key=lambda a: a["IndividualAssessmentName"]):
        assessment = item["IndividualAssessmentName"]
        key = files.get(f"{assessment}.json", f"{prefix}{assessment}.json")
        message, objects = await asyncio.to_thread(_result_objects, s3, bucket, key)
        findings.append(PreflightFinding(name=assessment, status=item["Status"], message=message,
                                         objects=objects))  # fmt: skip
    preflight = Preflight(
        mode=config.preflight, status=run["Status"], run_arn=arn, result_location=location,
        detail=run.get("LastFailureMessage", ""), findings=findings,
    )  # fmt: skip
    await acreate_table_artifact(
        key=f"dms-{config.dms_task_name.lower()}-preflight",
        table=preflight.table_rows(),
        description=f"Premigration assessment {name} of {config.dms_task_name}: {run['Status']}",
    )
    for finding in findings:
        if finding.status != AssessmentStatus.PASSED:
            logger.warning("Preflight %s: %s%s%s", finding.status, finding.name,
                           f": {finding.message}" if finding.message else "",
                           finding.named(limit=20))  # fmt: skip
    logger.info("Preflight: %s (%s)", run["Status"], ", ".join(
        f"{count} {state.lower()}" for state, count in run.get("ResultStatistic", {}).items() if count
    ))  # fmt: skip
    if config.preflight == "fail" and (run["Status"] != RunStatus.PASSED or preflight.failed):
        failures = (
            "; ".join(
                f"{f.name} {f.status}" + (f": {f.message}" if f.message else "") + f.named(limit=20)
                for f in preflight.failed
            )
            or preflight.detail
            or run["Status"]
        )
        raise PreflightFailedError(
            f"Preflight failed, so {not_started}: "
            f"{failures.rstrip('.')}. Fix the source or the task settings, or run with "
            "preflight: warn. "
            f"Results: {location}",
            preflight,
        )
    return preflight


def _result_files(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    """File name → key of the result files anywhere under ``prefix`` (empty when they cannot
    be listed)."""
    found: dict[str, str] = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found.setdefault(item["Key"].rsplit("/", 1)[-1], item["Key"])
    except botocore.exceptions.ClientError:
        return {}
    return found
