import pytest

from tests.dms_csv import parse_dms_csv

pytestmark = pytest.mark.unit


def test_parse_dms_csv_keeps_null_apart_from_empty_string():
    assert parse_dms_csv('1,,""\n2,"a,""b""\nc",x\n') == [["1", None, ""], ["2", 'a,"b"\nc', "x"]]


def test_parse_dms_csv_custom_delimiters_and_null():
    assert parse_dms_csv("1|NULL|a\r\n", "|", "\r\n", "NULL") == [["1", None, "a"]]
