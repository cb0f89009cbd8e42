"""The ``dms-lake`` flow on a real Prefect API: after an ingestion, each table's Iceberg table
holds the source's rows, the report and the events say what was applied, a second run applies
nothing, and a table the lake cannot key is refused by name while the others are applied."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import boto3
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from flows import dms_ingestion
from flows.lake import LakeError, dms_lake
from tests.integration.test_flow_events import events_of_run

pytestmark = pytest.mark.integration


def lake_settings(tmp_path: Any) -> dict[str, Any]:
    return {
        "lake_catalog_uri": f"sqlite:///{tmp_path}/catalog.db",
        "lake_tables": {
            # The endpoint writes CSV without a header: every column's type, in order.
            "bookings.tickets": {"key": ["id"], "column_types": {"id": "int", "name": "string"}},
            "bookings.flights": {"key": ["id"], "column_types": {"id": "int"}},
        },
    }


async def test_the_lake_applies_each_table_once_and_names_the_one_it_refuses(
    job, s3_server, tmp_path
):
    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)
    assert report.succeeded

    state = await dms_lake(config_path=str(job), overrides=lake_settings(tmp_path),
                           return_state=True)  # fmt: skip
    assert state.is_failed()
    with pytest.raises(LakeError, match=r"bookings.empty_one: .*no key in the lake config"):
        await state.result()
    lake = (await state.result(raise_on_failure=False)).report
    by_table = {t.table_name: t for t in lake.tables}
    assert by_table["tickets"].rebuilt
    assert by_table["tickets"].rows == 5000
    assert by_table["tickets"].objects == ["bookings/tickets/LOAD00000001.csv"]
    assert by_table["flights"].rows == 300
    assert by_table["empty_one"].error is not None

    catalog = SqlCatalog("dms", uri=f"sqlite:///{tmp_path}/catalog.db", **{
        "s3.endpoint": s3_server.url, "s3.access-key-id": s3_server.access_key_id,
        "s3.secret-access-key": s3_server.secret_access_key, "s3.region": "us-east-1",
    })  # fmt: skip
    tickets = catalog.load_table(("bookings", "tickets")).scan().to_arrow()
    assert sorted(tickets["id"].to_pylist()) == list(range(1, 5001))
    assert set(tickets.column("name").to_pylist()) == {f"passenger {i}" for i in range(1, 5001)}

    applied = await events_of_run(state.state_details.flow_run_id, ["dms.lake.table.applied"], 2)
    by_resource = {e.resource.id: e for e in applied}
    assert set(by_resource) == {"iceberg.dms.bookings.tickets", "iceberg.dms.bookings.flights"}
    event = by_resource["iceberg.dms.bookings.tickets"]
    assert event.payload["rows"] == 5000
    assert event.payload["rebuilt"] is True
    assert event.payload["snapshot_id"] == by_table["tickets"].snapshot_id
    assert {r.role: r.id for r in event.related}["dms-s3-table"] == (
        "s3://postgres-repo/bookings/tickets/"
    )

    again = await dms_lake(config_path=str(job), tables=["bookings.tickets", "bookings.flights"],
                           overrides=lake_settings(tmp_path))  # fmt: skip
    assert sorted((t.table_name, t.applied, t.snapshot_id) for t in again.tables) == [
        ("flights", False, by_table["flights"].snapshot_id),
        ("tickets", False, by_table["tickets"].snapshot_id),
    ]


async def test_the_lake_on_the_glue_data_catalog(job, s3_server, monkeypatch):
    """lake_catalog glue, against moto's Glue: the tables are Glue tables of type ICEBERG whose
    metadata_location is the current metadata (what Athena reads), with the source's rows."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", s3_server.url)  # moto serves Glue too
    assert (await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)).succeeded
    settings = {"lake_catalog": "glue", "lake_tables": lake_settings(None)["lake_tables"]}
    report = await dms_lake(config_path=str(job), tables=["bookings.tickets"], overrides=settings)

    (tickets,) = report.tables
    assert tickets.rows == 5000
    glue = boto3.client("glue", **s3_server.client_arguments())
    table = glue.get_table(DatabaseName="bookings", Name="tickets")["Table"]
    assert table["Parameters"]["table_type"].upper() == "ICEBERG"
    location = table["Parameters"]["metadata_location"]
    assert location.startswith("s3://postgres-repo/iceberg/")
    from pyiceberg.table import StaticTable

    static = StaticTable.from_metadata(location, properties={
        "s3.endpoint": s3_server.url, "s3.access-key-id": s3_server.access_key_id,
        "s3.secret-access-key": s3_server.secret_access_key, "s3.region": "us-east-1",
    })  # fmt: skip
    assert static.scan().to_arrow().num_rows == 5000
    assert static.current_snapshot().snapshot_id == tickets.snapshot_id


def test_the_lake_command_writes_its_report_and_says_what_is_missing(job, s3_server, tmp_path):
    """``dms-ingestion lake`` as a user runs it: the config from the environment, the JSON
    report, exit 0; and exit 2 with what to set when the catalog has no database."""
    assert asyncio.run(dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)).succeeded
    env = {
        **os.environ, **s3_server.credentials(),
        "DMS_LAKE_CATALOG_URI": f"sqlite:///{tmp_path}/catalog.db",
        "DMS_LAKE_TABLES": json.dumps(lake_settings(tmp_path)["lake_tables"]),
    }  # fmt: skip
    report = tmp_path / "lake.json"
    command = [sys.executable, "-m", "flows", "lake", "--config", str(job), "--table",
               "bookings.tickets", "--table", "bookings.flights", "--report-json", str(report)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| bookings.tickets | bookings.tickets | rebuilt |" in done.stdout
    written = json.loads(report.read_text())
    assert {t["table_name"]: t["rows"] for t in written["tables"]} == {"tickets": 5000,
                                                                        "flights": 300}  # fmt: skip

    del env["DMS_LAKE_CATALOG_URI"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "DMS_LAKE_CATALOG_URI" in refused.stderr
    assert "Traceback" not in refused.stderr
