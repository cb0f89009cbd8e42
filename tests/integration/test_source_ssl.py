"""An endpoint's SslMode is honoured on every connection to the source (asyncpg for the load and
the connection test, libpq for Parquet and change data capture), against a PostgreSQL with
``ssl=on`` and a certificate made here.

Each load reads a view that reports whether the session reading it is encrypted, so the LOAD file
itself says how localdms connected.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import pwd
import secrets
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg import sql

from sandbox.postgres import ThrowawayPostgres
from tests.conftest import PostgresServer, SourceDatabase
from tests.pipeline import create_task, provision, read_objects, run_task, select_rules

pytestmark = pytest.mark.integration

WHOAMI = (
    "CREATE VIEW public.whoami AS SELECT g AS id, "
    "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS encrypted "
    "FROM generate_series(1, 3) g"
)
VIEW_RULES = (
    '{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1", "rule-action": '
    '"include", "object-locator": {"schema-name": "public", "table-name": "whoami", '
    '"table-type": "view"}}]}'
)


def self_signed(directory) -> tuple[str, str]:
    """A server certificate and key for 127.0.0.1, readable by the server's user only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for path in (cert_path, key_path):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def ssl_server() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    cert, key = self_signed(server.root)
    server.settings.update({"ssl": "on", "ssl_cert_file": cert, "ssl_key_file": key})
    with server:
        yield server


@pytest.fixture
def ssl_source(ssl_server: ThrowawayPostgres) -> SourceDatabase:
    name = f"source_{secrets.token_hex(4)}"
    with psycopg.connect(ssl_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    source = SourceDatabase(
        PostgresServer(ssl_server.host, ssl_server.port, ssl_server.user, ssl_server.password),
        name,
    )
    source.execute(WHOAMI)
    return source


def connection_test(dms, arn: str) -> dict:
    instance = dms.describe_replication_instances()["ReplicationInstances"][0]
    dms.test_connection(ReplicationInstanceArn=instance["ReplicationInstanceArn"], EndpointArn=arn)
    waiter = dms.get_waiter("test_connection_succeeds")
    with contextlib.suppress(botocore.exceptions.WaiterError):  # failed: the caller looks at it
        waiter.wait(
            Filters=[{"Name": "endpoint-arn", "Values": [arn]}],
            WaiterConfig={"Delay": 0.2, "MaxAttempts": 100},
        )
    connection: dict = dms.describe_connections(
        Filters=[{"Name": "endpoint-arn", "Values": [arn]}]
    )["Connections"][0]
    return connection


@pytest.mark.parametrize(
    ("ssl_mode", "data_format", "encrypted"),
    [("require", "csv", "true"), ("require", "parquet", "true"), ("none", "csv", "false")],
)
def test_the_load_connects_as_the_endpoints_ssl_mode_says(
    dms, s3, ssl_source, ssl_mode, data_format, encrypted
):
    pipeline = provision(
        dms, s3, ssl_source, s3_settings={"DataFormat": data_format}, ssl_mode=ssl_mode
    )
    assert connection_test(dms, pipeline.source_arn)["Status"] == "successful"
    arn = create_task(dms, pipeline, VIEW_RULES)
    task = run_task(dms, arn)
    assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED", task.get(
        "LastFailureMessage"
    )

    ((key, body),) = read_objects(s3, pipeline.bucket, "public/whoami/").items()
    if data_format == "parquet":
        import io

        import pyarrow.parquet as pq

        values = {str(v) for v in pq.read_table(io.BytesIO(body))["encrypted"].to_pylist()}
    else:
        values = {line.split(",")[1] for line in body.decode().splitlines()}
    assert values == {encrypted}, key


def test_change_capture_connects_encrypted_with_require(dms, s3, ssl_source):
    from tests.integration.test_localdms_cdc import make_accounts, wait_capturing

    make_accounts(ssl_source, 100)
    pipeline = provision(
        dms, s3, ssl_source, s3_settings={"CdcMaxBatchInterval": 1}, ssl_mode="require"
    )
    arn = create_task(
        dms, pipeline, select_rules(("app", "accounts")), migration_type="full-load-and-cdc"
    )
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    wait_capturing(dms, arn)

    streams = ssl_source.fetchall(
        "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"
    )
    dms.stop_replication_task(ReplicationTaskArn=arn)
    assert streams == [(True,)]


def test_require_against_a_server_without_ssl_fails_the_connection_test_saying_why(
    dms, s3, source_db
):
    pipeline = provision(dms, s3, source_db, ssl_mode="require")
    connection = connection_test(dms, pipeline.source_arn)
    assert connection["Status"] == "failed"
    assert (
        "the server does not accept SSL connections, and the endpoint's SslMode is require"
        in (connection["LastFailureMessage"])
    )


@pytest.mark.parametrize(
    ("mode", "data_format"), [("verify-ca", "parquet"), ("verify-full", "csv")]
)
def test_verifying_modes_check_the_server_against_the_imported_certificate(
    dms, s3, ssl_server, ssl_source, mode, data_format
):
    """The CA (here the server's own self-signed certificate) imported with ImportCertificate:
    the load connects verified, through asyncpg and libpq (Parquet) alike."""
    pem = (ssl_server.root / "server.crt").read_text()
    ca = dms.import_certificate(CertificateIdentifier="server-ca", CertificatePem=pem)
    pipeline = provision(dms, s3, ssl_source, s3_settings={"DataFormat": data_format},
                         ssl_mode=mode, certificate_arn=ca["Certificate"]["CertificateArn"])  # fmt: skip
    assert connection_test(dms, pipeline.source_arn)["Status"] == "successful"
    task = run_task(dms, create_task(dms, pipeline, VIEW_RULES))
    assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED", task.get(
        "LastFailureMessage"
    )
    assert read_objects(s3, pipeline.bucket, "public/whoami/")


def test_a_server_signed_by_another_ca_fails_verification_saying_why(dms, s3, ssl_source, tmp_path):
    other, _ = self_signed(tmp_path)  # a certificate that did not sign the server's
    ca = dms.import_certificate(CertificateIdentifier="other-ca",
                                CertificatePem=Path(other).read_text())  # fmt: skip
    pipeline = provision(dms, s3, ssl_source, ssl_mode="verify-ca",
                         certificate_arn=ca["Certificate"]["CertificateArn"])  # fmt: skip
    connection = connection_test(dms, pipeline.source_arn)
    assert connection["Status"] == "failed"
    assert "does not pass SslMode verify-ca" in connection["LastFailureMessage"]


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verifying_modes_need_an_imported_certificate(dms, s3, source_db, mode):
    with pytest.raises(
        botocore.exceptions.ClientError,
        match=rf"InvalidParameterValueException.*SslMode {mode} needs a CertificateArn",
    ):
        provision(dms, s3, source_db, ssl_mode=mode)
    server = source_db.server
    with pytest.raises(botocore.exceptions.ClientError, match="ResourceNotFoundFault"):
        dms.create_endpoint(
            EndpointIdentifier="unknown-ca", EndpointType="source", EngineName="postgres",
            ServerName=server.host, Port=server.port, DatabaseName=source_db.name,
            Username=server.user, Password=server.password, SslMode=mode,
            CertificateArn="arn:aws:dms:us-east-1:123456789012:cert:NOSUCHCERTIFICATE",
        )  # fmt: skip


def test_deleting_a_cdc_task_with_verify_full_drops_its_slot(dms, s3, ssl_server, ssl_source):
    """The drop verifies the server against the imported CA, as the run did (it used to connect
    without the CA, fail on a thread, and leave the slot on the source)."""
    from tests.integration.test_localdms_cdc import (
        delete_and_wait_for_the_slot_to_go,
        make_accounts,
        slots,
        wait_capturing,
    )

    make_accounts(ssl_source, 100)
    pem = (ssl_server.root / "server.crt").read_text()
    ca = dms.import_certificate(CertificateIdentifier="server-ca", CertificatePem=pem)
    pipeline = provision(dms, s3, ssl_source, s3_settings={"CdcMaxBatchInterval": 1},
                         ssl_mode="verify-full", certificate_arn=ca["Certificate"]["CertificateArn"])  # fmt: skip
    arn = create_task(
        dms, pipeline, select_rules(("app", "accounts")), migration_type="full-load-and-cdc"
    )
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    wait_capturing(dms, arn)
    assert len(slots(ssl_source)) == 1

    assert delete_and_wait_for_the_slot_to_go(dms, arn, ssl_source) == []
