"""CloudWatch metrics as DMS publishes them (AWS DMS User Guide, CHAP_Monitoring): namespace
``AWS/DMS``, PutMetricData to the CloudWatch of the standard AWS configuration
(``AWS_ENDPOINT_URL_CLOUDWATCH``: moto's server answers it), every ``period`` seconds.

Published (names, units and dimensions are a contract: alarms and dashboards match on them):

- per running task, dimensions ``ReplicationInstanceIdentifier`` (the instance's identifier) and
  ``ReplicationTaskIdentifier`` (the last segment of the task's ARN, its resource id, as DMS sets
  it: not the identifier you gave): ``CDCLatencySource``, ``CDCLatencyTarget`` (Seconds),
  ``CDCIncomingChanges``, ``CDCChangesMemorySource``, ``CDCChangesMemoryTarget``,
  ``CDCChangesDiskSource``, ``CDCChangesDiskTarget`` (Count), ``CDCThroughputRowsSource``,
  ``CDCThroughputRowsTarget``, ``FullLoadThroughputRowsSource``, ``FullLoadThroughputRowsTarget``
  (Count/Second), ``CDCThroughputBandwidthSource``, ``CDCThroughputBandwidthTarget``,
  ``FullLoadThroughputBandwidthSource``, ``FullLoadThroughputBandwidthTarget``
  (Kilobytes/Second), from the run's real state (``localdms/engine/gauges.py`` says how each is
  measured);
- per running DMS Serverless replication, the same with the dimension ``ReplicationConfigId``
  as observed on AWS: ``<account id>:<the last segment of the config's ARN>`` (the guide names
  no dimension for replications; a published post-mortem shows this value, and how alarms built
  from the config's identifier instead broke when the config was recreated);
- per available instance, dimension ``ReplicationInstanceIdentifier``: ``CPUUtilization``
  (Percent: localdms's own CPU time over the period, of all cores), ``FreeableMemory``,
  ``SwapUsage`` (Bytes, the host's) and ``FreeStorageSpace`` (Bytes, of the state directory's
  file system).

A stopped or failed task publishes nothing, as on AWS (an alarm that treats missing data as fine
stays green on a dead task: treat it as breaching). The guide names no publishing period;
CloudWatch's standard resolution is a minute, the default here (``--metrics-period``).

Example:
    >>> resource_id("arn:aws:dms:us-east-1:123456789012:task:ABCDEF1234")
    'ABCDEF1234'
"""

from __future__ import annotations

import logging
import os
import resource as process_resource
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dms_spec.status import InstanceStatus, TaskStatus

if TYPE_CHECKING:
    from localdms.backend import DmsBackend
    from localdms.backend.resources import ReplicationTask
    from localdms.engine.gauges import CaptureGauges

log = logging.getLogger(__name__)

NAMESPACE = "AWS/DMS"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_CLOUDWATCH"
DEFAULT_PERIOD_SECONDS = 60.0
PUT_LIMIT = 1000
"""MetricData entries per PutMetricData call (the API's limit)."""


def resource_id(arn: str) -> str:
    """The last segment of an ARN (what DMS puts in its metrics' dimensions)."""
    return arn.rsplit(":", 1)[-1]


def _datum(
    name: str, value: float, unit: str, dimensions: dict[str, str], at: datetime
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": text} for key, text in dimensions.items()],
        "Timestamp": at,
        "Value": float(value),
        "Unit": unit,
    }


class MetricsPublisher:
    """Every ``period`` seconds, the metrics of the backend's running tasks, replications and
    available instances, sent with PutMetricData.

    Args:
        backend: the localdms backend to read.
        client_factory: returns a boto3 CloudWatch client.
        period: seconds between two publications.
        state_dir: whose file system ``FreeStorageSpace`` measures (the working directory when
            None).
    """

    def __init__(
        self,
        backend: DmsBackend,
        client_factory: Callable[[], Any],
        period: float = DEFAULT_PERIOD_SECONDS,
        state_dir: Path | None = None,
    ) -> None:
        self.backend = backend
        self.client_factory = client_factory
        self.period = period
        self.state_dir = state_dir or Path.cwd()
        self._stop = threading.Event()
        self._loaded: dict[str, int] = {}  # task ARN -> rows loaded at the last look
        self._cpu = (time.monotonic(), self._cpu_seconds())
        self._thread = threading.Thread(target=self._main, name="localdms-metrics", daemon=True)

    def start(self) -> MetricsPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _main(self) -> None:
        client = self.client_factory()
        while not self._stop.wait(self.period):
            try:
                data = self.collect()
                for first in range(0, len(data), PUT_LIMIT):
                    client.put_metric_data(
                        Namespace=NAMESPACE, MetricData=data[first : first + PUT_LIMIT]
                    )
            except Exception:  # the thread's top frame: a CloudWatch that refuses is logged
                log.exception("publishing metrics to CloudWatch failed")

    def collect(self) -> list[dict[str, Any]]:
        """This period's metric data (also what the publisher sends)."""
        now = time.time()
        at = datetime.fromtimestamp(now, UTC)
        backend = self.backend
        with backend.lock:  # the runs' threads change the tasks and their tables
            instances = [
                instance.identifier
                for instance in backend.instances.values()
                if instance.status == InstanceStatus.AVAILABLE
            ]
            runs = [
                (arn, dimensions, backend.runs[arn].gauges, _rows_loaded(task))
                for arn, dimensions, task in _runnables(backend)
                if task.status == TaskStatus.RUNNING and arn in backend.runs
            ]
        self._loaded = {arn: self._loaded.get(arn, loaded) for arn, _, _, loaded in runs}
        data: list[dict[str, Any]] = []
        for arn, dimensions, gauges, loaded in runs:
            data += self._run_data(arn, gauges, loaded, dimensions, now, at)
        host = self._instance_values()  # one process serves every instance: measured once
        for identifier in instances:
            dimensions = {"ReplicationInstanceIdentifier": identifier}
            data += [_datum(name, value, unit, dimensions, at) for name, value, unit in host]
        return data

    def _run_data(
        self,
        arn: str,
        gauges: CaptureGauges,
        loaded: int,
        dimensions: dict[str, str],
        now: float,
        at: datetime,
    ) -> list[dict[str, Any]]:
        sample = gauges.sample(now)

        def kb(size: int) -> float:
            return size / 1024 / self.period

        rows_per_second = max(0, loaded - self._loaded[arn]) / self.period
        self._loaded[arn] = loaded
        values = [
            ("CDCLatencySource", sample.latency_source, "Seconds"),
            ("CDCLatencyTarget", sample.latency_target, "Seconds"),
            ("CDCIncomingChanges", sample.incoming, "Count"),
            ("CDCChangesMemorySource", 0, "Count"),
            ("CDCChangesMemoryTarget", sample.incoming, "Count"),
            ("CDCChangesDiskSource", 0, "Count"),
            ("CDCChangesDiskTarget", 0, "Count"),
            ("CDCThroughputRowsSource", sample.rows_read / self.period, "Count/Second"),
            ("CDCThroughputRowsTarget", sample.rows_written / self.period, "Count/Second"),
            ("CDCThroughputBandwidthSource", kb(sample.bytes_read), "Kilobytes/Second"),
            ("CDCThroughputBandwidthTarget", kb(sample.bytes_written), "Kilobytes/Second"),
            ("FullLoadThroughputRowsSource", rows_per_second, "Count/Second"),
            ("FullLoadThroughputRowsTarget", rows_per_second, "Count/Second"),
            ("FullLoadThroughputBandwidthSource", kb(sample.load_bytes_read), "Kilobytes/Second"),
            ("FullLoadThroughputBandwidthTarget", kb(sample.load_bytes_written),
             "Kilobytes/Second"),
        ]  # fmt: skip
        return [_datum(name, value, unit, dimensions, at) for name, value, unit in values]

    def _instance_values(self) -> list[tuple[str, float, str]]:
        """The host's and this process's figures, once per period (every instance of this
        server runs in the same process)."""
        started, cpu = self._cpu
        now, cpu_now = time.monotonic(), self._cpu_seconds()
        self._cpu = (now, cpu_now)
        cores = os.cpu_count() or 1
        percent = 100.0 * (cpu_now - cpu) / max(now - started, 1e-6) / cores
        memory = _meminfo()
        disk = os.statvfs(self.state_dir)
        return [
            ("CPUUtilization", min(100.0, max(0.0, percent)), "Percent"),
            ("FreeableMemory", memory.get("MemAvailable", 0), "Bytes"),
            ("SwapUsage", memory.get("SwapTotal", 0) - memory.get("SwapFree", 0), "Bytes"),
            ("FreeStorageSpace", disk.f_bavail * disk.f_frsize, "Bytes"),
        ]

    @staticmethod
    def _cpu_seconds() -> float:
        usage = process_resource.getrusage(process_resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


def _runnables(backend: DmsBackend) -> list[tuple[str, dict[str, str], ReplicationTask]]:
    """Every task and Serverless replication with the dimensions DMS puts on its metrics."""
    instances = {arn: instance.identifier for arn, instance in backend.instances.items()}
    tasks = [
        (arn, {"ReplicationInstanceIdentifier": instances.get(task.instance_arn, ""),
               "ReplicationTaskIdentifier": resource_id(arn)}, task)
        for arn, task in backend.tasks.items()
    ]  # fmt: skip
    replications = [
        (
            arn,
            {"ReplicationConfigId": f"{backend.account_id}:{resource_id(arn)}"},
            config.replication,
        )
        for arn, config in backend.replication_configs.items()
    ]
    return tasks + replications


def _rows_loaded(task: ReplicationTask) -> int:
    """The full load's rows so far, over the task's tables."""
    return sum(table.full_load_rows for table in task.tables.values())


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in bytes (empty where there is none)."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return values
