"""Config validation: every error names the field, the value given and what is valid."""

import json

import pytest

from flows.config import load_config
from flows.exceptions import ConfigError

pytestmark = pytest.mark.unit

SOURCE = "arn:aws:dms:us-east-1:123456789012:endpoint:SOURCEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
TARGET = "arn:aws:dms:us-east-1:123456789012:endpoint:TARGETAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
INSTANCE = "arn:aws:dms:us-east-1:123456789012:rep:INSTANCEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
SEED = {
    "dms_task_name": "postgres-migration-test",
    "s3_bucket_name": "postgres-repo",
    "table_mappings": [{"schema_name": "bookings", "table_name": "tickets"}],
    "migration_type": "full-load",
}


@pytest.fixture(autouse=True)
def arns(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("SOURCE_ENDPOINT_ARN", "TARGET_ENDPOINT_ARN", "REPLICATION_INSTANCE_ARN"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"DMS_{name}", raising=False)
    monkeypatch.setenv("DMS_SOURCE_ENDPOINT_ARN", SOURCE)
    monkeypatch.setenv("DMS_TARGET_ENDPOINT_ARN", TARGET)
    monkeypatch.setenv("DMS_REPLICATION_INSTANCE_ARN", INSTANCE)


def write(tmp_path, content) -> str:
    path = tmp_path / "dms_config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_seed_config_works_unchanged(tmp_path):
    config = load_config(write(tmp_path, SEED))
    assert config.dms_task_name == "postgres-migration-test"
    assert config.source_endpoint_arn == SOURCE
    rules = json.loads(config.table_mappings_document())["rules"]
    assert rules == [
        {"rule-type": "selection", "rule-id": "1", "rule-name": "1", "rule-action": "include",
         "object-locator": {"schema-name": "bookings", "table-name": "tickets"}, "filters": []}
    ]  # fmt: skip
    assert config.task_settings_document() is None


def test_unprefixed_arn_variables_and_dotenv_work(tmp_path, monkeypatch):
    monkeypatch.delenv("DMS_SOURCE_ENDPOINT_ARN")
    monkeypatch.setenv("SOURCE_ENDPOINT_ARN", SOURCE)
    monkeypatch.delenv("DMS_REPLICATION_INSTANCE_ARN")
    (tmp_path / ".env").write_text(
        f"REPLICATION_INSTANCE_ARN={INSTANCE}\nDMS_POLL_INTERVAL_SECONDS=3\n"
    )
    config = load_config(write(tmp_path, SEED))
    assert (config.source_endpoint_arn, config.replication_instance_arn) == (SOURCE, INSTANCE)
    assert config.poll_interval_seconds == 3


def test_environment_beats_file_and_code_beats_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DMS_TIMEOUT_SECONDS", "60")
    path = write(tmp_path, {**SEED, "timeout_seconds": 30})
    assert load_config(path).timeout_seconds == 60
    assert load_config(path, timeout_seconds=10).timeout_seconds == 10


def test_raw_rules_and_settings_are_sent(tmp_path):
    rules = [{"rule-type": "selection", "rule-id": "9", "rule-name": "no-tmp", "rule-action": "exclude",
              "object-locator": {"schema-name": "bookings", "table-name": "tmp%"}}]  # fmt: skip
    config = load_config(
        write(tmp_path, {**SEED, "table_mapping_rules": rules,
                         "replication_task_settings": {"FullLoadSettings": {"MaxFullLoadSubTasks": 4}}})
    )  # fmt: skip
    assert [r["rule-id"] for r in json.loads(config.table_mappings_document())["rules"]] == [
        "1",
        "9",
    ]
    assert json.loads(config.task_settings_document() or "{}") == {
        "FullLoadSettings": {"MaxFullLoadSubTasks": 4}
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"migration_type": "full"}, ["migration_type", "'full'", "full-load", "cdc", "full-load-and-cdc"]),
        ({"dms_task_name": "bad--name"}, ["dms_task_name", "'bad--name'", "start with a letter"]),
        ({"dms_task_name": 12}, ["dms_task_name", "12"]),
        ({"s3_bucket_name": "Bad_Bucket"}, ["s3_bucket_name", "'Bad_Bucket'", "valid S3 bucket name"]),
        ({"table_mappings": "bookings.tickets"}, ["table_mappings", "valid list"]),
        ({"table_mappings": [{"schema_name": "bookings"}]}, ["table_mappings.0.table_name", "required"]),
        ({"table_mappings": []}, ["no tables selected"]),
        ({"table_mappings": [SEED["table_mappings"][0]] * 2}, ["bookings.tickets twice"]),
        ({"table_mappings": [{"schema_name": "b", "table_name": "t[x"}]}, ["unclosed '['"]),
        ({"table_mapping_rules": [{"rule-type": "selection", "rule-id": "5", "rule-name": "x", "rule-action": "keep",
                                   "object-locator": {"schema-name": "s", "table-name": "t"}}]},
         ["rule-action 'keep'", "include, exclude, explicit"]),
        ({"table_mapping_rules": [{"rule-type": "magic", "rule-id": "5"}]}, ["rule-type 'magic'", "selection"]),
        ({"poll_interval_seconds": 0}, ["poll_interval_seconds", "greater than 0"]),
        ({"if_running": "wait"}, ["if_running", "'wait'", "'fail'", "'attach'"]),
        ({"rerun_start_type": "start-replication"}, ["rerun_start_type", "reload-target", "resume-processing"]),
        ({"unknown_key": 1}, ["unknown_key: unknown key", "valid keys:", "dms_task_name"]),
        ({"source_endpoint_arn": "arn:aws:dms:us-east-1:123456789012:rep:X"}, ["source_endpoint_arn: a DMS rep ARN; expected a endpoint ARN", "(got 'arn:aws:dms"]),
        ({"target_endpoint_arn": "not-an-arn"}, ["target_endpoint_arn: not a DMS ARN", "(got 'not-an-arn')"]),
        ({"target_endpoint_arn": SOURCE}, ["same endpoint"]),
        ({"table_mappings_file": "missing.json"}, ["table_mappings_file", "missing.json"]),
    ],
)  # fmt: skip
def test_invalid_config_names_field_value_and_valid_choices(
    tmp_path, monkeypatch, change, expected
):
    for key in change:
        monkeypatch.delenv(f"DMS_{key.upper()}", raising=False)  # the environment would win
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, {**SEED, **change}))
    message = str(excinfo.value)
    for fragment in expected:
        assert fragment in message, message


def test_missing_task_name_is_named(tmp_path):
    with pytest.raises(ConfigError, match="dms_task_name: required"):
        load_config(write(tmp_path, {k: v for k, v in SEED.items() if k != "dms_task_name"}))


def test_the_bucket_and_folder_are_optional_since_dms_knows_them(tmp_path):
    config = load_config(write(tmp_path, {k: v for k, v in SEED.items() if k != "s3_bucket_name"}))
    assert (config.s3_bucket_name, config.s3_bucket_folder) == (None, None)
    assert load_config(write(tmp_path, SEED)).s3_bucket_name == SEED["s3_bucket_name"]


def test_missing_arn_says_where_to_set_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DMS_TARGET_ENDPOINT_ARN")
    with pytest.raises(
        ConfigError,
        match=r"target_endpoint_arn: missing.*DMS_TARGET_ENDPOINT_ARN or TARGET_ENDPOINT_ARN",
    ):
        load_config(write(tmp_path, SEED))


@pytest.mark.parametrize(
    ("content", "message"), [("{", "not valid JSON"), ("[]", "must hold a JSON object")]
)
def test_unreadable_files_are_refused(tmp_path, content, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, content))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.json")


def test_compute_config_is_checked_before_any_aws_call(monkeypatch, tmp_path):
    for name in ("SOURCE", "TARGET"):
        monkeypatch.setenv(f"DMS_{name}_ENDPOINT_ARN",
                           f"arn:aws:dms:us-east-1:123456789012:endpoint:{name}")  # fmt: skip
    monkeypatch.delenv("DMS_REPLICATION_INSTANCE_ARN", raising=False)
    monkeypatch.delenv("REPLICATION_INSTANCE_ARN", raising=False)
    base = {"dms_task_name": "t", "table_mappings": [{"schema_name": "s", "table_name": "t"}]}
    for compute, words in (
        ({"MaxCapacityUnits": 3}, "MaxCapacityUnits: must be one of 1, 2, 4"),
        ({"MaxCapacityUnits": 4, "MinCapacityUnits": 16}, "cannot exceed MaxCapacityUnits"),
        ({"MinCapacityUnits": 2}, "MaxCapacityUnits: required"),
        ({"MaxCapacityUnits": 4, "Colour": "blue"}, "Colour: unknown key"),
    ):
        with pytest.raises(ConfigError, match=words):
            load_config(**base, compute_config=compute)
    with pytest.raises(ConfigError, match="compute_config runs DMS Serverless"):
        load_config(**base, compute_config={"MaxCapacityUnits": 4},
                    replication_instance_arn="arn:aws:dms:us-east-1:123456789012:rep:R")  # fmt: skip
    with pytest.raises(ConfigError, match="or give compute_config to run DMS Serverless"):
        load_config(**base)
    assert load_config(**base, compute_config={"MaxCapacityUnits": 4}).serverless
