"""The target endpoint as the flow reads it, the S3 layout both sides share, and row counting."""

from __future__ import annotations

import doctest
import gzip
import importlib
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dms_spec.s3_layout import decode_delimiter, is_load_file, table_prefix
from flows.reconcile import count_csv_rows, gunzip, object_rows
from flows.target import TargetEndpoint
from localdms.endpoint_settings import S3Target

pytestmark = pytest.mark.unit

ARN = "arn:aws:dms:us-east-1:123456789012:endpoint:T"


def endpoint(**s3_settings) -> dict:
    return {
        "EndpointArn": ARN,
        "EngineName": "s3",
        "S3Settings": {"BucketName": "lake", **s3_settings},
    }


def test_the_endpoint_gives_bucket_folder_formats_and_decoded_delimiters():
    target = TargetEndpoint.from_endpoint(
        endpoint(BucketFolder="/raw/", DataFormat="csv", CompressionType="GZIP",
                 AddColumnName=True, CsvDelimiter="\\t", CsvRowDelimiter="\\r\\n")
    )  # fmt: skip
    assert (target.bucket, target.folder, target.settings.extension) == ("lake", "raw", ".csv.gz")
    settings = target.settings
    assert (settings.csv_delimiter, settings.csv_row_delimiter, settings.add_column_name) == (
        "\t", "\r\n", True,
    )  # fmt: skip
    assert target.url("public", "album") == "s3://lake/raw/public/album/"


def test_extra_connection_attributes_count_and_s3_settings_win():
    target = TargetEndpoint.from_endpoint(
        {**endpoint(BucketFolder="new"),
         "ExtraConnectionAttributes": "bucketFolder=old;dataFormat=parquet;addColumnName=y"}
    )  # fmt: skip
    assert (target.folder, target.settings.data_format, target.settings.add_column_name) == (
        "new", "parquet", True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ({"EndpointArn": ARN, "EngineName": "redshift"}, "is a 'redshift' endpoint; dms-ingestion loads into S3"),
        ({"EndpointArn": ARN, "EngineName": "s3", "S3Settings": {}}, "has no S3Settings.BucketName"),
    ],
)  # fmt: skip
def test_a_target_that_is_not_s3_is_refused_with_what_to_give(description, message):
    with pytest.raises(ValueError, match=message):
        TargetEndpoint.from_endpoint(description)


def test_config_values_are_checked_against_the_endpoint_never_preferred():
    target = TargetEndpoint.from_endpoint(endpoint(BucketFolder="raw"))
    assert target.disagreements(None, None) == []
    assert target.disagreements("lake", "raw/") == []
    bucket, folder = target.disagreements("postgres-repo", "")
    assert "Set s3_bucket_name to 'lake' or remove it" in bucket
    assert "s3_bucket_folder is '', but the target endpoint's BucketFolder is 'raw'" in folder


def test_localdms_writes_with_the_same_layout_and_delimiter_rule():
    """The Terraform provider sends CsvRowDelimiter as backslash-n: both sides read a newline."""
    written = S3Target.from_settings(
        {
            "BucketName": "lake",
            "BucketFolder": "raw/",
            "CsvRowDelimiter": "\\n",
            "CsvDelimiter": "\\t",
        }
    )
    read = TargetEndpoint.from_endpoint(
        endpoint(BucketFolder="raw/", CsvRowDelimiter="\\n", CsvDelimiter="\\t")
    )
    assert (written.csv_row_delimiter, written.csv_delimiter) == ("\n", "\t")
    assert (read.settings.csv_row_delimiter, read.settings.csv_delimiter) == ("\n", "\t")
    assert (
        written.table_prefix("s", "t")
        == read.table_prefix("s", "t")
        == table_prefix("raw", "s", "t")
    )
    assert written.extension == read.settings.extension == ".csv"


def test_delimiters_as_dms_reads_them():
    assert decode_delimiter("\\n") == "\n"
    assert decode_delimiter("\\r\\n") == "\r\n"
    assert decode_delimiter("\n") == "\n"  # a real newline stays one
    assert decode_delimiter("|") == "|"


def test_only_load_files_are_counted():
    assert is_load_file("raw/s/t/LOAD0000000A.csv.gz")
    assert is_load_file("s/t/LOAD00000001.parquet")
    assert not is_load_file("s/t/20260101-101010123.csv")
    assert not is_load_file("s/t/LOAD00000001.csv.tmp")


@pytest.mark.parametrize(
    ("chunks", "delimiter", "rows"),
    [
        ([b""], b"\n", 0),
        ([b"1,a\n2,b\n"], b"\n", 2),
        ([b"1,a\n2,b"], b"\n", 2),  # no delimiter after the last row
        ([b'1,"two\nlines"\n2,"say ""hi""\n"\n'], b"\n", 2),  # quoted newlines, doubled quotes
        ([b'1,"a', b"\n", b'b"\n2', b",c\n"], b"\n", 2),  # a quoted value split across chunks
        ([b"1,a\r", b"\n2,b\r\n"], b"\r\n", 2),  # a delimiter split across chunks
        ([b'1,"a\r\nb"\r\n'], b"\r\n", 1),
        ([b"1|2#;3|4#;"], b"#;", 2),
    ],
)
def test_csv_rows_are_counted_outside_quotes(chunks, delimiter, rows):
    assert count_csv_rows(chunks, delimiter) == rows


def test_gzip_streams_are_read_member_after_member():
    data = gzip.compress(b"1,a\n2,b\n") + gzip.compress(b'3,"c\nd"\n')
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    assert count_csv_rows(gunzip(chunks), b"\n") == 3


class FakeBody:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_chunks(self, size: int):
        return iter([self.data[i : i + size] for i in range(0, len(self.data), size)])

    def read(self) -> bytes:
        return self.data


class RangeS3:
    """An S3 client's get_object for one in-memory object, honouring Range like S3 does."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[str] = []

    def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict:
        if Range is None:
            return {"Body": FakeBody(self.data)}
        self.ranges.append(Range)
        start, end = (int(n) for n in Range.removeprefix("bytes=").split("-"))
        return {"Body": FakeBody(self.data[start : end + 1])}


def test_header_rows_are_not_counted_when_add_column_name():
    target = TargetEndpoint.from_endpoint(endpoint(AddColumnName="true"))
    assert object_rows(RangeS3(b"id,name\n1,a\n2,b\n"), target, "s/t/LOAD00000001.csv", 0) == 2


def test_parquet_rows_come_from_the_footer_without_reading_the_data():
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": list(range(50_000))}), sink, row_group_size=7_000)
    data = sink.getvalue().to_pybytes()
    s3 = RangeS3(data)
    target = TargetEndpoint.from_endpoint(endpoint(DataFormat="parquet"))

    assert object_rows(s3, target, "s/t/LOAD00000001.parquet", len(data)) == 50_000
    read = sum(int(r.split("-")[1]) - int(r.split("=")[1].split("-")[0]) + 1 for r in s3.ranges)
    assert read < len(data) / 4, (read, len(data))  # the footer, not the column chunks


ROOT = Path(__file__).resolve().parents[2]
WITH_EXAMPLES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in (
        "dms_spec",
        "flows",
        "lake",
        "localdms",
        "sandbox",
        "blocks",
        "demo",
        "work_pools",
        "docgen",
        "automations",
        "benchmarks",
    )
    for path in (ROOT / package).rglob("*.py")
    if ">>> " in path.read_text()
)


def test_the_examples_are_found():
    assert {"dms_spec.s3_layout", "flows.reconcile", "localdms.engine.s3_writer"} <= set(
        WITH_EXAMPLES
    )


@pytest.mark.parametrize("module", WITH_EXAMPLES)
def test_docstring_examples_run(module, monkeypatch):
    """Every docstring example runs and shows what it says (``+SKIP`` marks the few that need
    servers); the environment is restored after examples that set variables."""
    monkeypatch.setattr(os, "environ", os.environ.copy())  # what an example sets is undone
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert not result.failed


@pytest.mark.parametrize("delimiter", ["\n", "\r\n", "|", "#;"])
def test_csv_row_counts_agree_with_an_independent_parse_on_random_documents(delimiter):
    """Random rows of awkward values (quotes, newlines, the delimiter itself), quoted as DMS
    quotes them, cut into random chunks: the streaming count equals the number of rows written."""
    rng = random.Random(7)  # noqa: S311 - a fixed seed for a reproducible property test
    values = ["a", "", 'x"y', "l1\nl2", "a,b", "\r\n", "|", "#;", "#", ";"]
    for _ in range(200):
        rows = [[rng.choice(values) for _ in range(3)] for _ in range(rng.randint(0, 30))]
        quote = ('"', ",", "\n", "\r", delimiter)
        text = "".join(
            ",".join(f'"{v.replace(chr(34), chr(34) * 2)}"' if any(c in v for c in quote) else v
                     for v in row) + delimiter
            for row in rows
        )  # fmt: skip
        data = text.encode()
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 8))))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert count_csv_rows(chunks, delimiter.encode()) == len(rows), text
        compressed = gzip.compress(data)
        assert count_csv_rows(gunzip([compressed[:5], compressed[5:]]), delimiter.encode()) == len(
            rows
        )
