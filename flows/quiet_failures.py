"""Expected failures are logged without a Python traceback; bugs keep theirs.

Prefect's engines log every exception that ends a flow or task run with its traceback, on the
``prefect.flow_runs`` and ``prefect.task_runs`` loggers (to the terminal and to the run's logs in
the Prefect API alike). A DMS task that failed, a table in error or a bucket that disagrees with
the endpoint is not a bug in this code, and a traceback makes users read it as one. This filter
drops the traceback from those records when the exception is one of the flow's own errors
(``flows.exceptions.DmsIngestionError``); the message, which names the failure and what to do, is
kept. Any other exception keeps its traceback, and ``DMS_INGESTION_DEBUG=1`` (``dms-ingestion
run --debug``) keeps them all.

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


def install() -> None:
    """Add the filter to Prefect's run loggers (once; safe to call again)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExpectedFailureFilter) for f in logger.filters):
            logger.addFilter(ExpectedFailureFilter())
