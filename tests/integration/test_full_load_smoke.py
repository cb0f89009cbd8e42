"""A first end-to-end full load through boto3."""

import pytest

from tests.pipeline import (
    create_task,
    provision,
    read_objects,
    run_task,
    select_rules,
    table_statistics,
)

pytestmark = pytest.mark.integration


def test_full_load_copies_a_table_to_s3(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.items (id int primary key, name text)")
    source_db.execute(
        "INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 1000) g"
    )
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "%")))

    task = run_task(dms, arn)

    assert task["Status"] == "stopped", task
    assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    objects = read_objects(s3, pipeline.bucket)
    assert list(objects) == ["public/items/LOAD00000001.csv"]
    lines = objects["public/items/LOAD00000001.csv"].decode().splitlines()
    assert len(lines) == 1000
    assert lines[0] == "1,item 1"
    stats = table_statistics(dms, arn)
    assert stats[("public", "items")]["FullLoadRows"] == 1000
    assert stats[("public", "items")]["TableState"] == "Table completed"
