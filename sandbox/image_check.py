"""``make image-check`` (``python -m sandbox.image_check``): build the project's image and run the Compose stack's commands in it.

What Compose would run, as it would run it, except for the two third-party images (PostgreSQL and
MinIO come from Docker Hub, which may be unreachable): a throwaway PostgreSQL and moto's S3 (which
checks keys) run on this machine instead, and every container uses ``--network host`` (so
``127.0.0.1`` is this machine; no traffic leaves loopback). Then:

1. the image is built (``docker build --network=host``); its user is uid 10001, and ``.env``,
   ``.git`` and the tests are not in it;
2. localdms serves from the image (state in a named volume), the Prefect server runs from the image
   on the PostgreSQL database ``prefect`` (its password given as parts, as in Compose);
3. the setup service's command, read from ``docker-compose.yml``, runs twice (the second run must
   reuse everything);
4. a worker starts from the image with ``--with-healthcheck`` and answers on its health port;
5. ``prefect deployment run dms-ingestion/local --watch`` from the image completes.

Where Docker Hub is unreachable, ``docker/base-image.sh`` makes the base image from Debian
packages (this program runs it when the base is missing and ``debootstrap`` is installed).
Everything it starts is removed at the end, whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from sandbox.ports import free_port
from sandbox.postgres import ThrowawayPostgres
from sandbox.s3 import MotoS3Server

ROOT = Path(__file__).resolve().parents[1]

IMAGE = "dms-ingestion:local"
PREFIX = f"dms-image-check-{os.getpid()}"
BUCKET = "postgres-repo"


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def ensure_base_images() -> None:
    """Every ``FROM`` image of the Dockerfile: present, pulled, or made with debootstrap."""
    bases = set(re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M))
    for base in sorted(bases):
        if _present(base) or _pulled(base):
            continue
        if not shutil.which("debootstrap"):
            raise RuntimeError(
                f"{base} is not here and cannot be pulled; install debootstrap to make it "
                "(docker/base-image.sh), or load it with docker load"
            )
        step(f"making {base} with debootstrap (Docker Hub unreachable)")
        subprocess.run(["sh", str(ROOT / "docker" / "base-image.sh"), base], check=True)


def _present(image: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
    )


def _pulled(image: str) -> bool:
    return subprocess.run(["docker", "pull", "-q", image], capture_output=True).returncode == 0


def wait_for(url: str, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{what} did not answer on {url} within {timeout:.0f} s"
                ) from None
            time.sleep(0.5)


def env_args(env: dict[str, str]) -> list[str]:
    """``-e NAME`` for each variable: the values travel in docker's environment, not its argv."""
    return [arg for name in env for arg in ("-e", name)]


@contextmanager
def container(
    name: str, env: dict[str, str], command: Sequence[str], *options: str
) -> Iterator[str]:
    """A detached container of the image on the host network, removed on exit."""
    full = f"{PREFIX}-{name}"
    subprocess.run(
        ["docker", "run", "-d", "--name", full, "--network", "host", *env_args(env), *options,
         IMAGE, *command],
        check=True, capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    try:
        yield full
    finally:
        subprocess.run(["docker", "rm", "-f", full], capture_output=True)


def run_in_image(env: dict[str, str], command: Sequence[str], timeout: float = 900) -> str:
    """Run a one-shot container of the image; its output, or an error with its last lines."""
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", *env_args(env), IMAGE, *command],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **env},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)[:80]} failed in the image:\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")  # fmt: skip
    return result.stdout + result.stderr


def fixed_arns() -> dict[str, str]:
    """The ARNs setup gives the DMS resources, as ``.env.example`` documents them."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.startswith("DMS_"))


def main() -> int:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        print("error: no Docker engine answers. Start one (here: dockerd --bridge=none "
              "--iptables=false) and run make image-check again.", file=sys.stderr)  # fmt: skip
        return 2
    started = time.monotonic()
    ensure_base_images()
    step("building the image (docker build --network=host)")
    subprocess.run(["docker", "build", "--network=host", "-q", "-t", IMAGE, str(ROOT)], check=True)
    assert run_in_image({}, ["id", "-u"]).strip() == "10001", "the image must not run as root"
    leaked = run_in_image({}, ["sh", "-c", "ls -a /app"]).split()
    assert not {".env", ".git", "tests", ".venv-host"} & set(leaked), leaked

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    setup_command = compose["setup"]["command"]
    with ExitStack() as stack:
        step("PostgreSQL and S3 on this machine (in place of the postgres and minio images)")
        postgres = stack.enter_context(ThrowawayPostgres(settings={"wal_level": "logical"}))
        with psycopg.connect(postgres.dsn(), autocommit=True) as connection:
            for database in ("demo", "prefect"):
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        s3 = stack.enter_context(MotoS3Server())
        dms_port, prefect_port, health_port = free_port(), free_port(), free_port()
        app = {
            **s3.credentials(),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": s3.url,
            "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE": f"http://127.0.0.1:{dms_port}",
            "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            **fixed_arns(),
        }
        step("localdms and the Prefect server from the image")
        volume = f"{PREFIX}-data"
        stack.callback(
            subprocess.run, ["docker", "volume", "rm", "-f", volume], capture_output=True
        )
        stack.enter_context(container(
            "localdms", app,
            ["localdms", "serve", "--host", "127.0.0.1", "--port", str(dms_port), "--state-dir", "/data"],
            "-v", f"{volume}:/data",
        ))  # fmt: skip
        prefect_database = {
            "PREFECT_SERVER_DATABASE_DRIVER": "postgresql+asyncpg",
            "PREFECT_SERVER_DATABASE_HOST": postgres.host,
            "PREFECT_SERVER_DATABASE_PORT": str(postgres.port),
            "PREFECT_SERVER_DATABASE_USER": postgres.user,
            "PREFECT_SERVER_DATABASE_PASSWORD": postgres.password,
            "PREFECT_SERVER_DATABASE_NAME": "prefect",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        stack.enter_context(container(
            "prefect-server", prefect_database,
            ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
        ))  # fmt: skip
        wait_for(f"http://127.0.0.1:{dms_port}/health", "localdms")
        wait_for(f"http://127.0.0.1:{prefect_port}/api/health", "the Prefect server", 180)

        setup_env = {
            **app,
            "PGHOST": postgres.host, "PGPORT": str(postgres.port), "PGUSER": postgres.user,
            "PGPASSWORD": postgres.password, "PGDATABASE": "demo",
            "SAMPLE_SCALE": "small", "S3_BUCKET": BUCKET,
        }  # fmt: skip
        step("the setup service's command (from docker-compose.yml), twice")
        first = run_in_image(setup_env, [c.replace("$$", "$") for c in setup_command])
        second = run_in_image(setup_env, [c.replace("$$", "$") for c in setup_command])
        assert "already there, not generated again" in second, second[-2000:]
        assert "reusing local-instance" in second, second[-2000:]
        assert postgres.password not in first + second, "setup printed the database password"
        print(
            "    second run: "
            + next(line for line in second.splitlines() if "already there" in line)[:100]
        )

        step("a worker from the image, with its health server")
        worker_env = {**app, "PREFECT_WORKER_WEBSERVER_PORT": str(health_port)}
        worker_command = compose["worker"]["command"]
        stack.enter_context(container("worker", worker_env, worker_command))
        wait_for(f"http://127.0.0.1:{health_port}/health", "the worker's health server")

        step("prefect deployment run dms-ingestion/local --watch, from the image")
        watched = run_in_image(
            app, ["prefect", "deployment", "run", "dms-ingestion/local", "--watch"]
        )
        assert "COMPLETED" in watched.upper(), watched[-2000:]
        print("    " + "\n    ".join(watched.strip().splitlines()[-2:]), flush=True)
    print(f"image-check passed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
