from pathlib import Path

import pytest

from dms_spec.s3_target import S3SettingsError
from localdms.backend.queries import merge_settings
from localdms.endpoint_settings import (
    PostgresSource,
    S3Target,
    parse_extra_connection_attributes,
    s3_target,
)
from localdms.engine.rendering import RowDelimiterTranslator
from localdms.engine.s3_writer import load_file_name, row_end_after
from localdms.exceptions import InvalidParameterValueException
from localdms.identifiers import arn_kind, is_valid_identifier, random_resource_id

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "valid"),
    [("a", True), ("postgres-migration-test", True), ("A1-b2", True), ("1a", False), ("a-", False),
     ("a--b", False), ("a_b", False), ("", False), ("a" * 255, True), ("a" * 256, False)],
)  # fmt: skip
def test_identifier_rules(value, valid):
    assert is_valid_identifier(value) is valid


def test_random_resource_ids_are_39_base32_characters():
    ids = {random_resource_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 39 and set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for i in ids)


def test_arn_kind():
    assert arn_kind("arn:aws:dms:us-east-1:123456789012:task:ABC") == "task"
    assert arn_kind("arn:aws:s3:::bucket") is None


def test_load_file_names_are_uppercase_hex():
    assert [load_file_name(i, ".csv") for i in (1, 9, 10, 16)] == [
        "LOAD00000001.csv", "LOAD00000009.csv", "LOAD0000000A.csv", "LOAD00000010.csv",
    ]  # fmt: skip


def test_row_end_after_skips_quoted_newlines():
    chunk = b'1,"multi\nline"\n2,x\n3,y\n'
    assert row_end_after(chunk, 0, b"\n") == 15
    assert row_end_after(chunk, 16, b"\n") == 19
    assert row_end_after(b"1,a\r\n2,b\r\n", 2, b"\r\n") == 5


def test_row_delimiter_translator_keeps_state_across_chunks():
    translator = RowDelimiterTranslator("\r\n")
    out = translator.translate(b'1,"a\n') + translator.translate(b'b"\n2,""""\n')
    assert out == b'1,"a\nb"\r\n2,""""\r\n'


def test_s3_settings_accept_any_case_and_extra_connection_attributes():
    settings = parse_extra_connection_attributes(
        "bucketName=b;compressionType=GZIP;addColumnName=true"
    )
    target = S3Target.from_settings(settings)
    assert (target.bucket_name, target.compression, target.add_column_name) == ("b", "gzip", True)
    assert target.extension == ".csv.gz"
    assert (
        S3Target.from_settings({"BucketName": "b", "BucketFolder": "/x/y/"}).table_prefix("s", "t")
        == "x/y/s/t/"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "BucketName"),
        ({"BucketName": "b", "DataFormat": "orc"}, "DataFormat"),
        ({"BucketName": "b", "CompressionType": "zstd"}, "none and gzip"),
        ({"BucketName": "b", "CsvDelimiter": "||"}, "one character"),
        ({"BucketName": "b", "MaxFileSize": 0}, "1 to 1048576"),
        ({"BucketName": "b", "Rfc4180": False}, "RFC 4180"),
    ],
)
def test_bad_s3_settings_are_refused(settings, message):
    """As CreateEndpoint checks them (``s3_target``): DMS's rules, then what localdms emulates;
    the flow reads endpoints with the same parser (``dms_spec.s3_target``)."""
    with pytest.raises(InvalidParameterValueException, match=message):
        s3_target(settings)
    if "Rfc4180" not in settings:  # DMS takes Rfc4180=false; localdms does not write it
        with pytest.raises(S3SettingsError, match=message):
            S3Target.from_settings(settings)


def test_postgres_source_needs_every_connection_value_and_hides_the_password():
    with pytest.raises(InvalidParameterValueException, match="Port, DatabaseName"):
        PostgresSource.from_endpoint({"ServerName": "h", "Username": "u", "Password": "p"}, {})
    source = PostgresSource.from_endpoint(
        {"ServerName": "h", "Port": 5432, "Username": "u", "Password": "s3cret"},
        {"DatabaseName": "d"},
    )
    assert "s3cret" not in repr(source)


def test_merge_settings_is_deep_and_leaves_inputs_alone():
    base = {"A": {"x": 1, "y": 2}, "B": 1}
    merged = merge_settings(base, {"A": {"y": 3}, "C": [1]})
    assert merged == {"A": {"x": 1, "y": 3}, "B": 1, "C": [1]}
    assert base == {"A": {"x": 1, "y": 2}, "B": 1}


def test_a_state_directory_it_cannot_write_is_refused_at_start_saying_what_to_do():
    from localdms.store import Store

    with pytest.raises(
        ValueError, match="cannot write its state directory /sys/localdms"
    ) as refused:
        Store(Path("/sys/localdms"))  # not writable, not even by root
    assert "chown" in str(refused.value)
    assert "named volume" in str(refused.value)
