"""Where DMS puts a table's files in an S3 target, and how it reads the CSV delimiters.

One place for the rules that both sides need: localdms writes with them, and the flow reads S3
with them (reconciliation, the report's paths). From the AWS DMS User Guide, "Using Amazon S3 as
a target for AWS Database Migration Service": full-load files go to
``bucketName/bucketFolder/schema_name/table_name/`` and are named ``LOAD00000001.csv``,
``LOAD00000002.csv``, ... in uppercase hexadecimal (``LOAD00000009.csv`` is followed by
``LOAD0000000A.csv``); with ``CompressionType=GZIP`` they end in ``.csv.gz``; Parquet files end in
``.parquet`` (gzip is then the codec inside the file).

Example:
    >>> table_prefix("raw/", "public", "album")
    'raw/public/album/'
    >>> table_prefix("", "public", "album") + load_file_name(10, load_extension("csv", "gzip"))
    'public/album/LOAD0000000A.csv.gz'
    >>> decode_delimiter("\\\\n") == "\\n"
    True
"""

from __future__ import annotations

import re

LOAD_FILE = re.compile(r"LOAD[0-9A-F]{8}\.(csv|csv\.gz|parquet)$")
"""The name of a full-load file (the last part of its key)."""

_ESCAPES = {"\\n": "\n", "\\r": "\r", "\\t": "\t"}


def table_prefix(bucket_folder: str, schema: str, table: str) -> str:
    """``[BucketFolder/]schema/table/``: the folder of one target table (slashes trimmed)."""
    folder = bucket_folder.strip("/")
    return f"{folder + '/' if folder else ''}{schema}/{table}/"


def load_extension(data_format: str, compression: str) -> str:
    """``.parquet``, ``.csv.gz`` or ``.csv``, from the endpoint's DataFormat and CompressionType."""
    if data_format.lower() == "parquet":
        return ".parquet"
    return ".csv.gz" if compression.lower() == "gzip" else ".csv"


def load_file_name(sequence: int, extension: str) -> str:
    """``LOAD%08X`` plus the extension (the sequence starts at 1)."""
    return f"LOAD{sequence:08X}{extension}"


def is_load_file(key: str) -> bool:
    """Whether an object key names a full-load file (not a CDC file or anything else).

    Example:
        >>> is_load_file("raw/public/album/LOAD00000001.csv"), is_load_file("public/album/20240101-000000000.csv")
        (True, False)
    """
    return LOAD_FILE.search(key.rsplit("/", 1)[-1]) is not None


def decode_delimiter(value: str) -> str:
    """A CsvDelimiter or CsvRowDelimiter as DMS applies it: ``\\n``, ``\\r`` and ``\\t`` written
    as two-character escapes mean the control characters.

    DMS's API documents the defaults as the escapes (``CsvRowDelimiter`` "The default is a
    newline (``\\n``)"), DescribeEndpoints returns them that way, and the Terraform provider and
    the console send them that way; a real newline or tab is taken as it is.
    """
    return re.sub(r"\\[nrt]", lambda match: _ESCAPES[match.group(0)], value)
