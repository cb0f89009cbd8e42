"""The settings of every source session, full load and change capture alike, so that
PostgreSQL's text output (dates, intervals, floats, bytea, money) is the same whatever the
server's defaults: what the rules of ``rendering.py`` and ``columns.py`` rely on.

Example:
    >>> SESSION_SETUP.split("; ")[0]
    "SET DateStyle = 'ISO, YMD'"
"""

from __future__ import annotations

SESSION_SETTINGS = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",  # money's text form, which pgoutput sends to change capture
}
"""Every source session's settings (full load and change capture alike), so that PostgreSQL's
text output is the same whatever the server's defaults."""

SESSION_SETUP = "; ".join(f"SET {name} = '{value}'" for name, value in SESSION_SETTINGS.items())
"""``SESSION_SETTINGS`` as statements, run on every full-load connection."""

SESSION_OPTIONS = " ".join(
    f"-c {name}={value.replace(' ', chr(92) + ' ')}" for name, value in SESSION_SETTINGS.items()
)
"""``SESSION_SETTINGS`` as libpq ``options`` (spaces escaped), for connections that cannot run
statements first (the replication protocol)."""
