"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "docker-compose.yml").read_text()
SERVICES = yaml.safe_load(COMPOSE)["services"]
ONE_SHOT = {"setup"}
# Each command of the project's image, and the test that runs it natively.
NATIVE_COMMANDS = {
    "localdms serve": "sandbox.localdms_process.LocalDmsProcess (demo, make serve, benchmarks)",
    "prefect server start": "sandbox.prefect_server.PrefectServer (every flow test)",
    "prefect worker start --pool dms-process": "tests/e2e/test_deployment.py (make serve)",
    "python -m demo.bookings": "tests/integration/test_setup_clis.py",
    "python -m sandbox.localdms_process": "tests/integration/test_setup_clis.py",
    "python -m blocks --profile local": "tests/e2e/test_deployment.py (make serve)",
    "prefect --no-prompt work-pool create dms-process --type process --overwrite": "make serve",
    "prefect --no-prompt deploy --name local --name aws": "make serve",
}


def test_compose_file_follows_the_compose_specification():
    # Loaded as Compose loads it (YAML anchors and << merges resolved), then checked.
    spec = PyCompose.from_yaml(yaml.safe_dump(yaml.safe_load(COMPOSE))).to_spec()
    assert set(spec.services or {}) == {
        "postgres", "minio", "localdms", "prefect-server", "setup", "worker",
    }  # fmt: skip


def test_published_ports_are_bound_to_loopback():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_services_wait_for_healthy_dependencies():
    for name, service in SERVICES.items():
        if name not in ONE_SHOT:
            assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert condition == {"condition": expected}, f"{name} -> {dependency}"


def test_every_variable_is_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", COMPOSE)) | set(
        re.findall(r"\$\$\{([A-Z0-9_]+)\}", COMPOSE)
    )
    set_by_images = {
        "POSTGRES_DB",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
    }  # postgres's own, in-container
    assert used - documented - set_by_images == set()


def test_postgres_has_logical_replication_and_the_prefect_database():
    assert "wal_level=logical" in SERVICES["postgres"]["command"]
    assert "CREATE DATABASE prefect" in (ROOT / "docker" / "postgres-init.sql").read_text()
    database = SERVICES["prefect-server"]["environment"]
    assert (database["PREFECT_SERVER_DATABASE_HOST"], database["PREFECT_SERVER_DATABASE_NAME"]) == (
        "postgres",
        "prefect",
    )


def test_every_image_command_is_one_the_tests_run_natively():
    for name, service in SERVICES.items():
        if service.get("image") != "dms-ingestion:local":
            continue
        command = service["command"]
        parts = [" ".join(command)] if command[0] != "sh" else command[2].split(" && ")
        for part in parts:
            words = shlex.split(part)
            assert any(" ".join(words).startswith(native) for native in NATIVE_COMMANDS), (
                f"{name}: {part}"
            )


def test_dockerfile_final_stage_is_slim_non_root_and_from_the_lock():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    assert final.startswith("\nFROM python:3.11-slim-bookworm\n")
    assert re.search(r"^USER dms$", final, re.M)
    assert "uv sync --frozen" in dockerfile
    assert "apt-get" not in final  # no build tools in the final stage
    assert "pip install" not in final


def test_images_are_pinned_and_the_projects_image_is_built_not_pulled():
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image, f"{name}: {image} has no tag"
        assert not image.endswith((":latest", ":15")), f"{name}: {image} is not pinned"
        if image == "dms-ingestion:local":
            assert service["pull_policy"] == ("build" if "build" in service else "never"), name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'pip install --no-cache-dir "uv==[0-9.]+"', dockerfile)


def test_no_password_goes_into_a_url_or_a_command_line():
    for name, service in SERVICES.items():
        text = yaml.safe_dump(service)
        assert "POSTGRES_PASSWORD}@" not in text, name  # would need URL-encoding
        assert "PASSWORD" not in " ".join(map(str, service.get("command", []))), name


def test_the_build_context_leaves_out_secrets_and_the_image_has_no_shared_healthcheck():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv", "tests"} <= set(ignored)
    assert "HEALTHCHECK" not in (ROOT / "Dockerfile").read_text().replace("No HEALTHCHECK", "")
    worker = SERVICES["worker"]
    assert "--with-healthcheck" in worker["command"]
    assert "127.0.0.1:8080/health" in " ".join(worker["healthcheck"]["test"])
