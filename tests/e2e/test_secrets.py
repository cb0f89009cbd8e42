"""Secrets never leave the process that needs them: the demo is run with a known database password
and the AWS keys of an S3 that checks them, then every line it printed, every log line and artifact the Prefect server holds
for its runs, and the flow runs' parameters and state messages are searched for them."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sandbox.s3 import MotoS3Server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def api_post(api_url: str, path: str, body: dict[str, object]) -> list[dict[str, object]]:
    """Every page of a Prefect ``/filter`` endpoint."""
    items: list[dict[str, object]] = []
    while True:
        request = urllib.request.Request(
            f"{api_url}{path}",
            data=json.dumps({**body, "limit": 200, "offset": len(items)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.load(response)
        items.extend(page)
        if len(page) < 200:
            return items


def test_demo_never_shows_the_database_password_or_the_aws_secret_key(postgres, tmp_path):
    password = "Pw;'" + secrets.token_urlsafe(12) + '"x'  # quotes and a semicolon on purpose
    role, database = f"secret_{secrets.token_hex(3)}", f"secret_{secrets.token_hex(3)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
    quoted = urllib.parse.quote(password, safe="")
    dsn = f"postgresql://{role}:{quoted}@{postgres.host}:{postgres.port}/{database}"
    s3_server = MotoS3Server().start()  # its own, so that the test knows the secret key
    aws_secret = s3_server.secret_access_key
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "AWS_"))}
    env.update(s3_server.credentials())
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        demo = subprocess.Popen(
            [sys.executable, "-m", "demo", "--source-dsn", dsn, "--s3-endpoint", s3_server.url,
             "--keep"],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    texts: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C stops everything" not in out.read_text():
            assert demo.poll() is None, out.read_text()[-2000:] + err.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(1)
        ui = re.search(r"Prefect UI: (\S+)", out.read_text()).group(1)  # type: ignore[union-attr]
        api = f"{ui}/api"
        runs = api_post(api, "/flow_runs/filter", {})
        assert len(runs) == 9  # the flow and one subflow per table
        texts += [json.dumps(run) for run in runs]  # parameters, state messages, tags
        logs = api_post(api, "/logs/filter", {})
        artifacts = api_post(api, "/artifacts/filter", {})
        assert len(logs) > 20  # there was plenty to search
        assert any(str(a.get("key", "")).endswith("-report") for a in artifacts)
        texts += [json.dumps(log) for log in logs] + [json.dumps(a) for a in artifacts]
        texts += [json.dumps(t) for t in api_post(api, "/task_runs/filter", {})]
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(120)
        s3_server.stop()
    texts += [out.read_text(), err.read_text()]
    everything = "\n".join(texts)
    assert "succeeded" in out.read_text()
    for secret in (password, quoted, aws_secret):
        assert secret not in everything
