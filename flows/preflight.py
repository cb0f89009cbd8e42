"""The preflight: a DMS premigration assessment run before the task starts (``preflight``).

With ``warn`` (the default) the findings are published and the run goes on; with ``fail`` a
failed assessment stops the run before anything is loaded. The assessment is DMS's own
(StartReplicationTaskAssessmentRun), so it is the same check on AWS and offline: its statuses
come from DescribeReplicationTaskIndividualAssessments, the tables and columns each names from
its result file in S3 (``<name>.json`` beside ``summary.json``), read best effort (DMS does not
publish those files' schema; a file it cannot read leaves the finding without objects).

The role DMS assumes to write the results is the target endpoint's ServiceAccessRoleArn unless
``preflight_role_arn`` says otherwise, and the bucket the target endpoint's unless
``preflight_bucket`` does: DMS already knows both.
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
    location = f"s3://{bucket}/{folder + '/' if folder else ''}{name}/"
    logger.info("Preflight: premigration assessment %s started (results in %s)", name, location)
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
        run = await asyncio.to_thread(hook.describe_assessment_run, arn)
    individual = await asyncio.to_thread(hook.individual_assessments, arn)
    prefix = f"{folder + '/' if folder else ''}{name}/"
    findings = []
    for item in sorted(individual, key=lambda a: a["IndividualAssessmentName"]):
        assessment = item["IndividualAssessmentName"]
        message, objects = await asyncio.to_thread(
            _result_objects, s3, bucket, f"{prefix}{assessment}.json"
        )
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
            f"Preflight failed, so replication task {config.dms_task_name} was not started: "
            f"{failures.rstrip('.')}. Fix the source or the task settings, or run with "
            "preflight: warn. "
            f"Results: {location}",
            preflight,
        )
    return preflight
