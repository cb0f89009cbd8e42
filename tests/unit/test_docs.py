"""The docs' claims that point at tests: every test named in docs/bad-input.md exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_bad_input_case_names_a_test_that_exists():
    text = (ROOT / "docs" / "bad-input.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 30
    defined = {
        name
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.MULTILINE)
    }
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row)
        assert named, f"no test named for: {row}"
        missing = [name for name in named if name not in defined]
        assert not missing, f"{missing} named in docs/bad-input.md do not exist"
