"""What a change capture measures, for the metrics DMS publishes (AWS DMS User Guide,
CHAP_Monitoring, "Replication task metrics"), read by ``localdms/metrics.py``.

- ``CDCLatencySource``: "the gap, in seconds, between the last event captured from the source
  endpoint and current system time stamp"; 0 when nothing new was read since the last look
  ("the task resets the CDCSourceLatency to 0").
- ``CDCLatencyTarget``: "the gap ... between the first event timestamp waiting to commit on the
  target and the current timestamp": here the commit time of the oldest change read and not yet
  in S3; 0 when every change read is written.
- ``CDCIncomingChanges``: "change events at a point-in-time that are waiting to be applied to the
  target": changes read and not yet in S3.
- ``CDCThroughputRowsSource`` / ``...Target``: changes read / written per second since the last
  look; ``CDCThroughputBandwidthSource`` / ``...Target``: the bytes of those changes as read from
  the slot (pgoutput messages) / as written to S3 (the CDC files), per second.
- ``FullLoadThroughputBandwidthSource`` / ``...Target``: the full load's bytes read from
  PostgreSQL (COPY's CSV, or ADBC's Arrow batches) / written to S3 (the LOAD files), per second.
- ``CDCChangesMemorySource``, ``CDCChangesDiskSource``, ``CDCChangesDiskTarget``: 0. A change read
  goes straight to its table's pending CDC file (counted as ``CDCChangesMemoryTarget``, the same
  as ``CDCIncomingChanges``); nothing waits on the source side and nothing spills to disk.

One ``CaptureGauges`` lives as long as the run: a capture restarted after a recoverable error
(``dms_spec.recovery``) keeps measuring on it, so the target latency goes on rising while S3
refuses the files.

Example:
    >>> from datetime import UTC, datetime
    >>> gauges = CaptureGauges()
    >>> gauges.read(datetime.fromtimestamp(100.0, UTC), 3, 300)
    >>> sample = gauges.sample(now=104.0)
    >>> sample.latency_source, sample.latency_target, sample.incoming, sample.rows_read
    (4.0, 4.0, 3, 3)
    >>> gauges.written(120)
    >>> sample = gauges.sample(now=110.0)
    >>> sample.latency_source, sample.latency_target, sample.incoming, sample.rows_written
    (0.0, 0.0, 0, 3)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class GaugeSample:
    """The capture's state at one look, and what it did since the previous one."""

    latency_source: float
    latency_target: float
    incoming: int
    rows_read: int
    rows_written: int
    bytes_read: int = 0
    bytes_written: int = 0
    load_bytes_read: int = 0
    load_bytes_written: int = 0


class CaptureGauges:
    """Counters a capture updates (its thread) and the metrics publisher reads (another)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_read: float | None = None  # commit time of the last change read
        self._read_since_look = False
        self._oldest_unwritten: float | None = None
        self._incoming = 0
        self._rows_read = self._rows_written = 0
        self._bytes_read = self._bytes_written = 0
        self._load_read = self._load_written = 0

    def read(self, commit_time: datetime, changes: int, size: int = 0) -> None:
        """A committed transaction's ``changes`` (``size`` bytes of messages) were read (and
        wait to be written)."""
        at = commit_time.timestamp()
        with self._lock:
            self._last_read, self._read_since_look = at, True
            if self._oldest_unwritten is None:
                self._oldest_unwritten = at
            self._incoming += changes
            self._rows_read += changes
            self._bytes_read += size

    def written(self, size: int = 0) -> None:
        """Every change read is in S3 (a flush of ``size`` bytes and its checkpoint succeeded)."""
        with self._lock:
            self._rows_written += self._incoming
            self._bytes_written += size
            self._incoming, self._oldest_unwritten = 0, None

    def loaded(self, read: int, written: int) -> None:
        """The full load read ``read`` bytes from the source and wrote ``written`` to S3."""
        with self._lock:
            self._load_read += read
            self._load_written += written

    def restarted(self) -> None:
        """Capture restarts from its checkpoint: what it had read is read again (and counted
        again), while the oldest unwritten change stays unwritten."""
        with self._lock:
            self._incoming = 0

    def sample(self, now: float) -> GaugeSample:
        """The values at ``now`` (epoch seconds); the counts since the previous sample."""
        with self._lock:
            latency_source = (
                max(0.0, now - self._last_read)
                if self._read_since_look and self._last_read is not None
                else 0.0
            )
            latency_target = (
                max(0.0, now - self._oldest_unwritten) if self._oldest_unwritten else 0.0
            )
            sample = GaugeSample(
                latency_source, latency_target, self._incoming, self._rows_read,
                self._rows_written, self._bytes_read, self._bytes_written, self._load_read,
                self._load_written,
            )  # fmt: skip
            self._read_since_look = False
            self._rows_read = self._rows_written = 0
            self._bytes_read = self._bytes_written = self._load_read = self._load_written = 0
            return sample
