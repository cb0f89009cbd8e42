"""Which PostgreSQL source types DMS migrates, partly migrates, or does not migrate (AWS DMS User
Guide, CHAP_Source.PostgreSQL: the table of data types and whether they "migrate successfully",
"partially migrate" or "don't migrate", and the limitations list: "The OID LOB data type isn't
migrated to the target", "AWS DMS supports the PostGIS data type for only homogeneous
migrations", "A table with an ARRAY data type must have a primary key ... [or it] gets
suspended during full load").

The guide contradicts itself on ENUM, INET and MACADDR (listed as not migrating, while its type
map gives them STRING(64), STRING(50) and STRING(18)); the assessment reports what the first
table says and localdms writes them as text, as the type map does.

Example:
    >>> verdict("inet", "inet"), verdict("numeric", "numeric"), verdict("int4", "integer")
    ('not migrated', 'partially migrated', None)
"""

from __future__ import annotations

import re

NOT_MIGRATED = {
    "anyenum": "ENUM",
    "inet": "INET",
    "macaddr": "MACADDR",
    "tsvector": "TSVECTOR",
    "tsquery": "TSQUERY",
    "oid": "OID (large object references)",
    "geometry": "PostGIS (homogeneous migrations only)",
    "geography": "PostGIS (homogeneous migrations only)",
}
"""Base types (``pg_type.typname``; ``anyenum`` for any enum type) that do not migrate."""

PARTIALLY_MIGRATED = {
    "timestamptz": "TIMESTAMP(Z)",
    "timetz": "TIME(Z)",
    "interval": "INTERVAL",
    "xml": "XML",
}
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")


def verdict(base_type: str, type_name: str) -> str | None:
    """``not migrated``, ``partially migrated``, or None when the type migrates successfully.

    Args:
        base_type: ``pg_type.typname`` of the column's base type.
        type_name: ``format_type`` of the column (``numeric(12,2)``, ``character varying``).
    """
    if base_type in NOT_MIGRATED:
        return "not migrated"
    if base_type in PARTIALLY_MIGRATED:
        return "partially migrated"
    if base_type == "numeric":
        match = _NUMERIC.fullmatch(type_name.replace(" ", ""))
        if match is None or int(match.group(1)) > 38:
            # "Where p>38 or p=s=0": a STRING, or NUMERIC(28,6) (cut to 6 decimals). The guide
            # lists NUMERIC(p,s) with 0<s as partial too; values within p,s are kept whole.
            return "partially migrated"
    if base_type in ("bpchar", "varchar") and "(" not in type_name:
        return "partially migrated"  # "Without specified precision"
    return None


def label(base_type: str, type_name: str) -> str:
    """The guide's name for the type, for messages."""
    return NOT_MIGRATED.get(base_type) or PARTIALLY_MIGRATED.get(base_type) or type_name
