"""How PostgreSQL values become DMS CSV text (AWS DMS User Guide: CHAP_Target.S3 on .csv files, CHAP_Source.PostgreSQL on source data types).

PostgreSQL does the formatting: localdms builds one ``SELECT`` whose expressions render each
value the way DMS writes it (``columns.load_select``), and streams ``COPY (SELECT ...) TO STDOUT
(FORMAT csv)``. No value is touched in Python. Choices where the reference is UNCONFIRMED (each covered by a test):

* NULL is an empty field (or ``CsvNullValue`` when set); an empty string is ``""``, so the two stay
  distinguishable (PostgreSQL's CSV rule; DMS's stock behaviour here is unconfirmed).
* ``timestamp``/``timestamptz``: ``YYYY-MM-DD HH:MM:SS[.ffffff]`` as PostgreSQL prints it, with
  fractional seconds only when non-zero; timestamptz converted to UTC, no zone suffix. (A fixed
  six-digit ``to_char`` form costs PostgreSQL +54% CPU on a timestamp-heavy table, measured here,
  for a format the sources do not confirm.)
* ``boolean``: ``true``/``false`` (DMS maps it to CHAR(5) "false or true").
* ``bytea``: lowercase hex without the ``\\x`` prefix.
* ``char(n)``: trailing padding trimmed (``TrimSpaceInChar`` defaults to true).
* ``money``: a plain number (DMS maps it to NUMERIC(38,4)), no currency symbol.
* The Op column (``IncludeOpForFullLoad``) comes first, then the ``TimestampColumnName`` column,
  then the data columns (``columns.output_columns``). The header name of the Op column is ``Op``.
* LOB values over ``LobMaxSize`` (limited LOB mode) are cut in the same ``SELECT``
  (``columns.lob_cut``, with the sizes of ``dms_spec.lob``).

The settings every source session runs with, so that PostgreSQL prints values the same whatever
the server's defaults, are in ``session.py``.
"""

from __future__ import annotations

import csv
import io

from localdms.endpoint_settings import S3Target
from localdms.engine.columns import output_columns
from localdms.table_mappings import TablePlan


def header_line(plan: TablePlan, target: S3Target) -> bytes:
    """The AddColumnName header row, quoted like the data, or ``b""`` when disabled."""
    if not target.add_column_name:
        return b""
    names = [c.header for c in output_columns(plan, target, target.include_op_for_full_load)]
    buffer = io.StringIO()
    csv.writer(
        buffer, delimiter=target.csv_delimiter, lineterminator=target.csv_row_delimiter
    ).writerow(names)
    return buffer.getvalue().encode()


class RowDelimiterTranslator:
    """Rewrite COPY's ``\\n`` row ends into ``CsvRowDelimiter``, leaving quoted newlines alone.

    COPY output is row-aligned per chunk but a quoted value may hold newlines, so quote parity is
    tracked across the chunk's quote-separated segments.

    Example:
        >>> RowDelimiterTranslator("\\r\\n").translate(b'a,"x\\ny"\\nb,c\\n')
        b'a,"x\\ny"\\r\\nb,c\\r\\n'
    """

    def __init__(self, row_delimiter: str) -> None:
        self.row_delimiter = row_delimiter.encode()
        self.in_quotes = False

    def translate(self, chunk: bytes) -> bytes:
        segments = chunk.split(b'"')
        for index, segment in enumerate(segments):
            if index:
                self.in_quotes = not self.in_quotes
            if not self.in_quotes and b"\n" in segment:
                segments[index] = segment.replace(b"\n", self.row_delimiter)
        return b'"'.join(segments)
