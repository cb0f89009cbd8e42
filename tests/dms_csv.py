"""Reading DMS CSV back in tests, keeping NULL (an unquoted empty field) apart from ``""``.

Python's ``csv`` module reads both as ``""``, which would hide exactly the difference the tests
check, so this is a small RFC 4180 reader of its own.
"""

from __future__ import annotations


def parse_dms_csv(
    text: str, delimiter: str = ",", row_delimiter: str = "\n", null: str = ""
) -> list[list[str | None]]:
    """Split ``text`` into rows of fields; an unquoted field equal to ``null`` becomes None."""
    rows: list[list[str | None]] = []
    row: list[str | None] = []
    index, length = 0, len(text)
    while index < length:
        if text[index] == '"':
            end = index + 1
            value = []
            while True:
                quote = text.index('"', end)
                value.append(text[end:quote])
                if text.startswith('""', quote):
                    value.append('"')
                    end = quote + 2
                else:
                    index = quote + 1
                    break
            field: str | None = "".join(value)
        else:
            ends = [
                p for p in (text.find(delimiter, index), text.find(row_delimiter, index)) if p != -1
            ]
            stop = min(ends) if ends else length
            raw = text[index:stop]
            field = None if raw == null else raw
            index = stop
        row.append(field)
        if text.startswith(delimiter, index):
            index += len(delimiter)
            if index == length:
                row.append(None if null == "" else "")
        elif text.startswith(row_delimiter, index) or index >= length:
            index += len(row_delimiter)
            rows.append(row)
            row = []
        else:
            raise ValueError(f"unexpected character at {index}: {text[index : index + 20]!r}")
    return rows
