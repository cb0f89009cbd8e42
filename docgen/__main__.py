"""``python -m docgen [--check]``: write the generated documentation pages, or check them."""

from __future__ import annotations

import argparse
import sys

from docgen.reference import stale_pages, write_pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docgen", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a page is out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for path in stale:
            print(f"{path} is out of date: run `make docs` (or python -m docgen)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_pages():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
