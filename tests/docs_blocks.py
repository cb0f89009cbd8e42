"""The code blocks of the documentation, as tests read them.

Every fenced block in ``README.md`` and ``docs/`` stands under a comment that says what it is:
``<!-- tested: NAME -->`` (a test reads it with ``block("NAME")`` and runs or checks it) or
``<!-- illustration -->`` (an example that cannot run here as written: it needs AWS, your ARNs or
a Docker engine). ``tests/unit/test_docs.py`` holds every block to that, and every ``tested``
name to a test that reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- (?:(?P<illustration>illustration)|tested: (?P<name>[\w-]+)) -->$")


@dataclass(frozen=True)
class Block:
    """A fenced code block: where it is, its language, its text and its marker."""

    path: Path
    line: int
    language: str
    text: str
    name: str | None  # the ``tested`` name; None for an illustration or an unmarked block
    marked: bool

    def commands(self) -> list[str]:
        """The block's shell commands: its lines without comments and blank lines."""
        lines = (line.split("#", 1)[0].strip() for line in self.text.splitlines())
        return [line for line in lines if line]


def documentation_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks() -> list[Block]:
    """Every fenced block of the documentation, in order."""
    found = []
    for path in documentation_files():
        lines = path.read_text().splitlines()
        index = 0
        while index < len(lines):
            if lines[index].startswith("```"):
                end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
                marker = MARKER.match(lines[index - 1]) if index else None
                found.append(
                    Block(
                        path=path, line=index + 1, language=lines[index][3:].strip(),
                        text="\n".join(lines[index + 1 : end]) + "\n",
                        name=marker.group("name") if marker else None, marked=marker is not None,
                    )
                )  # fmt: skip
                index = end
            index += 1
    return found


def block(name: str) -> Block:
    """The block marked ``<!-- tested: name -->`` (there is exactly one)."""
    named = [found for found in blocks() if found.name == name]
    assert len(named) == 1, f"{len(named)} documentation blocks are marked tested: {name}"
    return named[0]
