"""``localdms serve``: run the DMS-compatible server."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

from localdms.metrics import DEFAULT_PERIOD_SECONDS
from localdms.server import make_server


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``localdms`` command."""
    parser = argparse.ArgumentParser(
        prog="localdms", description="A local engine that speaks the AWS DMS API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the DMS API over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=4599, help="port (0 picks a free one)")
    serve.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCALDMS_STATE_DIR", ".localdms")),
        help="where endpoints, instances, tasks and statistics persist (default .localdms)",
    )
    serve.add_argument(
        "--transition-seconds",
        type=float,
        default=float(os.environ.get("LOCALDMS_TRANSITION_SECONDS", "1.0")),
        help="how long creating/starting/modifying/deleting/testing stay visible (default 1)",
    )
    serve.add_argument(
        "--min-running-seconds",
        type=float,
        default=float(os.environ["LOCALDMS_MIN_RUNNING_SECONDS"])
        if os.environ.get("LOCALDMS_MIN_RUNNING_SECONDS")
        else None,
        help="how long a full load shows running at least (default: --transition-seconds); "
        "Terraform's start_replication_task first looks after 30 s, so give it 40",
    )
    serve.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        help="region used in ARNs",
    )
    serve.add_argument(
        "--faults",
        default=os.environ.get("LOCALDMS_FAULTS", ""),
        help="inject API faults for testing: throttle=R,error=R[,seed=N] (default off)",
    )
    serve.add_argument(
        "--metrics-period", type=float, default=DEFAULT_PERIOD_SECONDS,
        help="seconds between CloudWatch publications (AWS/DMS metrics), when "
        "AWS_ENDPOINT_URL_CLOUDWATCH is set (default 60; none are published without it)",
    )  # fmt: skip
    serve.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not _is_loopback(args.host):
        logging.warning(
            "localdms is listening on %s: it has no authentication, so anyone who can reach this "
            "address can read your endpoints and start copies. Bind 127.0.0.1 unless you need this.",
            args.host,
        )
    try:
        server = make_server(
            args.host,
            args.port,
            args.state_dir,
            args.transition_seconds,
            args.region,
            args.faults,
            min_running_seconds=args.min_running_seconds,
            metrics_period=args.metrics_period,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if server.faults.enabled:
        logging.warning("fault injection is on: %s", server.faults)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"localdms ready on {server.url} (state in {args.state_dir})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
