"""``python -m work_pools kubernetes|ecs``: print a pool's base job template as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from work_pools.templates import TEMPLATES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m work_pools",
        description="Print the base job template of a scale-out work pool (for "
        "`prefect work-pool create NAME --type TYPE --base-job-template FILE`).",
    )
    parser.add_argument("pool_type", choices=sorted(TEMPLATES))
    args = parser.parse_args(argv)
    json.dump(TEMPLATES[args.pool_type](), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
