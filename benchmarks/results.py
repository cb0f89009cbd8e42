"""The figures of one ``make bench`` run, against their targets.

Each benchmark records its figures here as it prints them (``record``); at the end
``python -m benchmarks.results`` prints them as one table (the figure, its baseline measured in
the same run, the ratio, the target and whether it is met) and the file they are kept in,
``bench-results.json`` in the working tree (``DMS_BENCH_RESULTS`` names another), for comparing
runs. ``make bench`` starts a new file.

Example:
    >>> import os, tempfile
    >>> os.environ["DMS_BENCH_RESULTS"] = os.path.join(tempfile.mkdtemp(), "results.json")
    >>> record("big: localdms CSV", 1.6, "s", baseline=2.0, baseline_name="COPY | S3 pipe",
    ...        ratio=2.0 / 1.6, target=">= 1.0")
    >>> record("50 tables: overhead", 4.2, "s", target="<= 5")
    >>> print(table())
    figure               value   baseline                 ratio  target  met
    big: localdms CSV    1.60 s  2.00 s (COPY | S3 pipe)  1.25x  >= 1.0  yes
    50 tables: overhead  4.20 s                                  <= 5    yes
"""

from __future__ import annotations

import json
import operator
import os
from pathlib import Path
from typing import Any

COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


def results_path() -> Path:
    """Where this run's figures are kept."""
    return Path(os.environ.get("DMS_BENCH_RESULTS", "bench-results.json"))


def met(value: float, target: str) -> bool | None:
    """Whether ``value`` meets a target written as ``">= 1.0"`` (None without a target).

    Example:
        >>> met(0.7, ">= 1.0"), met(4.0, "<= 5"), met(1.0, "")
        (False, True, None)
    """
    if not target:
        return None
    sign, bound = target.split()
    return bool(COMPARE[sign](value, float(bound)))


def record(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str = "",
    ratio: float | None = None,
    target: str = "",
) -> None:
    """Keep one figure of this run (a figure of the same name is replaced).

    Args:
        name: what was measured, e.g. ``"big: localdms CSV"``.
        value: the figure, in ``unit``.
        unit: its unit.
        baseline: the baseline it was measured against in the same run (same unit), if any.
        baseline_name: what the baseline is.
        ratio: how the figure compares with the baseline (higher is better, e.g. the
            baseline's time over the figure's), if there is one.
        target: the target as ``"<sign> <bound>"``: on the ratio when there is one, else on
            the value; empty for a figure without a target.
    """
    path = results_path()
    figures: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    figures = [f for f in figures if f["name"] != name]
    figures.append({
        "name": name, "value": value, "unit": unit, "baseline": baseline,
        "baseline_name": baseline_name, "ratio": ratio, "target": target,
        "met": met(value if ratio is None else ratio, target),
    })  # fmt: skip
    path.write_text(json.dumps(figures, indent=2) + "\n")


def table() -> str:
    """This run's figures as a text table."""
    path = results_path()
    figures: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    rows = [("figure", "value", "baseline", "ratio", "target", "met")]
    for f in figures:
        base = (
            f"{f['baseline']:.2f} {f['unit']} ({f['baseline_name']})"
            if f["baseline"] is not None
            else ""
        )
        ratio = f"{f['ratio']:.2f}x" if f["ratio"] is not None else ""
        verdict = {True: "yes", False: "NO", None: ""}[f["met"]]
        rows.append((
            f["name"], f"{f['value']:.2f} {f['unit']}", base, ratio, f["target"], verdict,
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def main() -> None:
    """Print this run's figures and where they are kept."""
    figures = json.loads(results_path().read_text()) if results_path().exists() else []
    print()
    print(table())
    missed = [f["name"] for f in figures if f["met"] is False]
    print(f"\n{len(figures)} figures in {results_path()}; targets missed: {len(missed)}")


if __name__ == "__main__":
    main()
