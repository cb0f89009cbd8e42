"""``make serve``: the local development stack, with deployments, until interrupted.

PostgreSQL with the sample ``bookings`` data, moto's S3 server, localdms (instance and endpoints
created through the DMS API), a Prefect server (SQLite by default, PostgreSQL when
``PREFECT_API_DATABASE_CONNECTION_URL`` is set), the ``dms-process`` work pool, a process worker,
the ``dms-local`` AwsCredentials block and the deployments of ``prefect.yaml``. It prints what runs
where and the command to run; Ctrl-C (or SIGTERM) stops everything.

Then, in another terminal: ``PREFECT_API_URL=<printed> prefect deployment run dms-ingestion/local --watch``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from sandbox.errors import StackStartError, exit_code_of

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
WORK_POOL = "dms-process"


def prefect_cli(*args: str, env: dict[str, str]) -> None:
    """Run a ``prefect`` command non-interactively from the repository; raise with its output."""
    result = subprocess.run(
        [PREFECT, "--no-prompt", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise StackStartError(
            f"`prefect {' '.join(args)}` failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def register_deployments(env: dict[str, str]) -> None:
    """The ``dms-local`` block, the work pool and the process pool's deployments of
    ``prefect.yaml`` (the Kubernetes and ECS ones need their clusters)."""
    blocks = subprocess.run(
        [sys.executable, "-m", "blocks", "--profile", "local"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if blocks.returncode != 0:
        raise StackStartError(f"creating the AwsCredentials block failed:\n{blocks.stderr[-2000:]}")
    prefect_cli("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite", env=env)
    prefect_cli("deploy", "--name", "local", "--name", "aws", "--name", "cdc-watch-local", env=env)


def start_worker(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A process worker on the pool (its flow runs inherit ``env``: endpoints and ARNs), with its
    health server on ``PREFECT_WORKER_WEBSERVER_PORT``, as the Compose stack's worker."""
    return subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", WORK_POOL, "--with-healthcheck"],
        cwd=ROOT, env=env, stdout=log, stderr=log,
    )  # fmt: skip


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """A process worker forwards the first signal to its runs and stops on the second."""
    for _ in range(2):
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
            return
        except subprocess.TimeoutExpired:
            continue
    process.kill()
    process.wait(5)


def write_keys_file(path: Path, keys: dict[str, str]) -> Path:
    """The S3 keys as ``export`` lines in a file only its owner can read (never on the terminal).

    Example:
        >>> import tempfile
        >>> path = write_keys_file(Path(tempfile.mkdtemp()) / "k.env", {"AWS_ACCESS_KEY_ID": "id"})
        >>> path.read_text(), oct(path.stat().st_mode & 0o777)
        ('export AWS_ACCESS_KEY_ID=id\\n', '0o600')
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"export {name}={value}\n" for name, value in keys.items())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.serve", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--scale", choices=["small", "medium", "large"], default="small")
    args = parser.parse_args(argv)
    # Ctrl-C (SIGINT) and SIGTERM stop everything, even when started from a shell that had
    # SIGINT ignored (a background job), which Python would otherwise inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    os.environ.update(AWS_DEFAULT_REGION="us-east-1")
    return exit_code_of(lambda: serve(args))


def serve(args: argparse.Namespace) -> int:
    """Start the stack, print what runs where, and wait for Ctrl-C (or the worker to exit)."""
    import boto3
    import psycopg

    from demo import DEMO_BUCKET_FOLDER
    from demo.bookings import create_bookings
    from sandbox.localdms_process import LocalDmsProcess, provision_pipeline
    from sandbox.ports import free_port
    from sandbox.postgres import ThrowawayPostgres
    from sandbox.prefect_server import PrefectServer
    from sandbox.s3 import MotoS3Server

    with ExitStack() as stack:
        postgres = stack.enter_context(ThrowawayPostgres())
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE demo")
        counts = create_bookings(postgres.dsn("demo"), args.scale)
        s3_server = stack.enter_context(MotoS3Server())
        # The S3 checks keys: localdms, the worker and the dms-local block all get the IAM user's.
        os.environ.update(s3_server.credentials())
        # moto answers CloudWatch, EventBridge and SNS too: localdms publishes its metrics and
        # events there, as DMS does to AWS, and the CDC watch reads them back.
        for service in ("CLOUDWATCH", "EVENTBRIDGE", "SNS"):
            os.environ[f"AWS_ENDPOINT_URL_{service}"] = s3_server.url
        boto3.client("s3", endpoint_url=s3_server.url).create_bucket(Bucket="postgres-repo")
        localdms = stack.enter_context(LocalDmsProcess(s3_server.url))
        arns = provision_pipeline(
            boto3.client("dms", endpoint_url=localdms.url), postgres.dsn("demo"), "postgres-repo",
            {"BucketFolder": DEMO_BUCKET_FOLDER},
        )  # fmt: skip
        server = stack.enter_context(
            PrefectServer(database_url=os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"))
        )
        health_port = free_port()
        env = {
            **os.environ,
            **arns.environment(),
            "PREFECT_API_URL": server.api_url,
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "DMS_INGESTION_HOME": str(ROOT),
            "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
            "PREFECT_WORKER_WEBSERVER_PORT": str(health_port),
            "AWS_ENDPOINT_URL_S3": s3_server.url,
            "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE": localdms.url,
        }
        register_deployments(env)
        keys_file = write_keys_file(server.home / "s3-credentials.env", s3_server.credentials())
        worker_log = stack.enter_context((server.home / "worker.log").open("ab"))
        worker = start_worker(env, worker_log)
        stack.callback(stop_worker, worker)

        print(f"PostgreSQL   {postgres.host}:{postgres.port}/demo (user postgres; "
              f"{sum(counts.values()):,} rows in schema bookings)")  # fmt: skip
        print(f"S3 (moto)    {s3_server.url}  bucket postgres-repo; checks keys: "
              f"AWS_ACCESS_KEY_ID={s3_server.access_key_id}, both keys in {keys_file}")  # fmt: skip
        print(f"localdms     {localdms.url}")
        print(f"Prefect UI   {server.url}  (API {server.api_url})")
        print(f"Worker       pool {WORK_POOL}, log {server.home / 'worker.log'}, "
              f"health http://127.0.0.1:{health_port}/health")  # fmt: skip
        print("Deployments  dms-ingestion/local, dms-ingestion/aws, dms-cdc-watch/cdc-watch-local "
              "(every 5 minutes, paused)")  # fmt: skip
        print(
            f"\nRun:  PREFECT_API_URL={server.api_url} prefect deployment run dms-ingestion/local --watch"
        )
        print("Ctrl-C stops everything.", flush=True)
        try:
            while worker.poll() is None:
                time.sleep(1)
            print(
                f"error: the worker exited ({worker.returncode}); see {server.home / 'worker.log'}",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print("\nStopping ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
