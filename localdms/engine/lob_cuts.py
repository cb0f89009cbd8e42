"""Counting the LOB values a full load cuts, so that the log says how many of which columns.

DMS "truncates [LOBs over the maximum LOB size], and a warning is issued to the log file"
(CHAP_Tasks.LOBSupport). localdms says it once per table and load, with the count of each column,
and only when a value was cut. Counting must not cost a second read of the table:

* a column whose type ``columns.lob_within`` can test (text, xml, bytea) counts in the load's own
  statement: the branch that cuts adds one to a session setting (``columns.counted``), set to 0
  before the statement and read back after it, in the same session;
* the other LOB types (jsonb, arrays, hstore...) have no constant-time test, so their cut values
  are counted after the load by a query in the load's snapshot (LOG_ERROR only: under the other
  DataTruncationErrorPolicy values no cut value is loaded).

Example:
    >>> from localdms.endpoint_settings import S3Target
    >>> from localdms.table_mappings import SourceColumn, SourceTable, TablePlan
    >>> columns = (SourceColumn("id", "integer", "int4"), SourceColumn("body", "text", "text"),
    ...            SourceColumn("doc", "jsonb", "jsonb"))
    >>> plan = TablePlan(SourceTable("s", "t", "table", columns), "s", "t",
    ...                  tuple((c, c.name) for c in columns))
    >>> cuts = CutCounts.of(plan, S3Target.from_settings({"BucketName": "b"}), 1024, "LOG_ERROR")
    >>> cuts.reset
    "SELECT set_config('localdms.cut_1', '0', false)"
    >>> cuts.message([3], [0])
    's.t: LOB values longer than LobMaxSize (1,024 bytes) were truncated: 3 of body'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from localdms.endpoint_settings import S3Target
from localdms.engine.columns import lob_over, output_columns
from localdms.table_mappings import TablePlan


def _select_each(template: str, settings: Sequence[str]) -> str:
    """``SELECT template(s1), template(s2), ...`` over session setting names."""
    return (
        sql.SQL("SELECT {}")
        .format(sql.SQL(", ").join(sql.SQL(template).format(sql.Literal(s)) for s in settings))
        .as_string(None)
    )


@dataclass(frozen=True)
class CutCounts:
    """How one table's full load counts the values it cuts.

    Args:
        table: the source table, ``schema.name``.
        lob_limit: where values are cut, bytes.
        counted: the headers and session settings of the columns counted in the load.
        measured: the headers of the columns counted by ``query`` after the load.
        query: counts, for each of ``measured``, the values over the limit (or None).
    """

    table: str
    lob_limit: int
    counted: tuple[tuple[str, str], ...]
    measured: tuple[str, ...]
    query: str | None

    @classmethod
    def of(
        cls, plan: TablePlan, target: S3Target, lob_limit: int | None, policy: str
    ) -> CutCounts | None:
        """The counting of a table's load, or None when nothing of it can be cut."""
        if lob_limit is None:
            return None
        columns = [c for c in output_columns(plan, target, False, lob_limit) if c.truncates]
        if not columns:
            return None
        counted = tuple((c.header, c.cut_counter) for c in columns if c.cut_counter)
        others = [(c.header, c.source) for c in columns if not c.cut_counter and c.source]
        query = None
        if others and policy == "LOG_ERROR":
            counts = sql.SQL(", ").join(
                sql.SQL("count(*) FILTER (WHERE {})").format(lob_over(source, lob_limit))
                for _, source in others
            )
            statement = sql.SQL("SELECT {} FROM {}").format(
                counts, sql.Identifier(plan.source.schema, plan.source.name)
            )
            if plan.where is not None:
                statement = sql.SQL("{} WHERE {}").format(statement, plan.where)
            query = statement.as_string(None)
        measured = tuple(header for header, _ in others) if query else ()
        table = f"{plan.source.schema}.{plan.source.name}"
        return cls(table, lob_limit, counted, measured, query)

    @property
    def reset(self) -> str | None:
        """The statement that sets the counters to 0, before the load's statement."""
        settings = [setting for _, setting in self.counted]
        return _select_each("set_config({}, '0', false)", settings) if settings else None

    @property
    def read(self) -> str | None:
        """The statement that reads the counters, after the load's statement."""
        settings = [setting for _, setting in self.counted]
        return _select_each("current_setting({})::int", settings) if settings else None

    def message(self, counted: Sequence[int] | None, measured: Sequence[int] | None) -> str | None:
        """The warning for the values cut (the counters' values, then ``query``'s, each None
        when not read), or None when none was cut."""
        names = [header for header, _ in self.counted] + list(self.measured)
        counts = [*(counted or [0] * len(self.counted)), *(measured or [0] * len(self.measured))]
        cut = [f"{int(n):,} of {name}" for name, n in zip(names, counts, strict=True) if n]
        if not cut:
            return None
        return (
            f"{self.table}: LOB values longer than LobMaxSize ({self.lob_limit:,} bytes) were "
            f"truncated: {', '.join(cut)}"
        )
