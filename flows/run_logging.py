"""How a run's logs read: expected failures without a traceback, one story per table.

**Expected failures.**
Prefect's engines log every exception that ends a flow or task run with its traceback, on the
``prefect.flow_runs`` and ``prefect.task_runs`` loggers (to the terminal and to the run's logs in
the Prefect API alike). A DMS task that failed, a table in error or a bucket that disagrees with
the endpoint is not a bug in this code, and a traceback makes users read it as one. This filter
drops the traceback from those records when the exception is one of the flow's own errors
(``flows.exceptions.DmsIngestionError``); the message, which names the failure and what to do, is
kept. Any other exception keeps its traceback, and ``DMS_INGESTION_DEBUG=1`` (``dms-ingestion
run --debug``) keeps them all.

**Subflow noise.** Prefect's engine logs, for every subflow run, "View at <url>" twice,
"Beginning subflow run ..." (under the calling task's name) and "Finished in state Completed()".
``SubflowNoiseFilter`` keeps one "View at" line, the main run's, and drops those engine lines of
``track-table-load`` runs (the per-table runs are recorded by ``flows.table_flows`` without the
engine, and say themselves when a table starts and ends; the filter keeps any other engine run
of that flow quiet too).

Example:
    >>> import logging, sys
    >>> from flows.exceptions import TableLoadError
    >>> try:
    ...     raise TableLoadError("public.album ended in 'Table error'")
    ... except TableLoadError:
    ...     record = logging.makeLogRecord({"msg": "Task run failed", "exc_info": sys.exc_info()})
    >>> ExpectedFailureFilter().filter(record), record.exc_info
    (True, None)
"""

from __future__ import annotations

import logging
import os

from flows.exceptions import DmsIngestionError

DEBUG_VARIABLE = "DMS_INGESTION_DEBUG"
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
ENGINE_LOGGERS = ("prefect.engine", "prefect.flow_runs", "prefect.task_runs")
TABLE_FLOW = "track-table-load"


class ExpectedFailureFilter(logging.Filter):
    """Strips the traceback from records about a ``DmsIngestionError`` (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if os.environ.get(DEBUG_VARIABLE, "").lower() in ("1", "true", "yes"):
            return True
        exception = record.exc_info[1] if record.exc_info else None
        if isinstance(exception, DmsIngestionError):
            record.exc_info = None
            record.exc_text = None
        return True


class SubflowNoiseFilter(logging.Filter):
    """Drops the engine's per-subflow lines (see the module docstring); keeps everything else."""

    def __init__(self) -> None:
        super().__init__()
        self._links_shown: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("View at "):
            return self._first_link_of_a_main_run(message.removeprefix("View at ").strip())
        if message.startswith("Beginning subflow run ") and message.endswith(
            f"for flow {TABLE_FLOW!r}"
        ):
            return False
        return not (
            getattr(record, "flow_name", None) == TABLE_FLOW
            and message.startswith("Finished in state Completed")
        )

    def _first_link_of_a_main_run(self, url: str) -> bool:
        from prefect.context import FlowRunContext

        if url in self._links_shown:
            return False
        context = FlowRunContext.get()
        # A run created inside another run's context, or running with a parent task, is a subflow.
        if context is not None and (
            context.flow_run is None
            or context.flow_run.parent_task_run_id is not None
            or not url.endswith(str(context.flow_run.id))
        ):
            return False
        self._links_shown.add(url)
        return True


def install() -> None:
    """Add both filters to Prefect's loggers (once; safe to call again)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExpectedFailureFilter) for f in logger.filters):
            logger.addFilter(ExpectedFailureFilter())
    noise = SubflowNoiseFilter()
    for name in ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SubflowNoiseFilter) for f in logger.filters):
            logger.addFilter(noise)
