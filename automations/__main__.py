"""``python -m automations --notify <block> [--silence-minutes N]``: create the CDC alerts."""

from __future__ import annotations

import argparse
import asyncio
import sys

from automations import create


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automations", description=__doc__)
    parser.add_argument("--notify", required=True,
                        help="the notification block to send through (webhook, Slack, Teams, ...)")  # fmt: skip
    parser.add_argument("--silence-minutes", type=float, default=15,
                        help="how long without a CDC watch event before the silence alert")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        ids = asyncio.run(create(args.notify, args.silence_minutes * 60))
    except ValueError as exc:
        print(f"error: {exc} Create the notification block first (see docs/cdc.md).",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"Created {len(ids)} automations: dms-cdc-unhealthy, dms-cdc-watch-silent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
