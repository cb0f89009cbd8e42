"""The documentation holds to the code: every code block is run by a test or marked as an
illustration, the generated reference pages are current, the documented configs load, the
README's links lead somewhere, and every test named in docs/bad-input.md exists."""

from __future__ import annotations

import json
import re

import pytest

from docgen.reference import stale_pages
from flows.config import load_config
from tests.docs_blocks import ROOT, block, blocks, documentation_files

pytestmark = pytest.mark.unit

TESTS = ROOT / "tests"
ARNS = {
    "DMS_SOURCE_ENDPOINT_ARN": "arn:aws:dms:us-east-1:123456789012:endpoint:SOURCE",
    "DMS_TARGET_ENDPOINT_ARN": "arn:aws:dms:us-east-1:123456789012:endpoint:TARGET",
}


def test_every_code_block_is_run_by_a_test_or_marked_as_an_illustration():
    found = blocks()
    assert len(found) >= 20
    unmarked = [f"{b.path.relative_to(ROOT)}:{b.line}" for b in found if not b.marked]
    assert not unmarked, (
        "mark each block <!-- tested: NAME --> (and read it in a test with block('NAME')) or "
        f"<!-- illustration -->: {unmarked}"
    )
    names = [b.name for b in found if b.name]
    assert len(names) == len(set(names)), "a tested name is used twice"
    readers = "\n".join(
        text
        for text in (path.read_text() for path in TESTS.rglob("test_*.py"))
        if "from tests.docs_blocks import" in text
    )
    unread = [name for name in names if f'"{name}"' not in readers]
    assert not unread, f"blocks marked tested that no test reads: {unread}"


def test_the_generated_reference_pages_are_what_the_code_says():
    assert stale_pages() == [], "run `make docs` (python -m docgen) and commit docs/reference/"


@pytest.mark.parametrize(
    "name", ["readme-config", "seed-config", "serverless-config", "lake-config"]
)
def test_the_documented_configs_load_as_documented(name, tmp_path, monkeypatch):
    config = tmp_path / "dms_config.json"
    config.write_text(block(name).text)
    for variable, value in ARNS.items():
        monkeypatch.setenv(variable, value)
    document = json.loads(block(name).text)
    if "compute_config" not in document:
        monkeypatch.setenv(
            "DMS_REPLICATION_INSTANCE_ARN", "arn:aws:dms:us-east-1:123456789012:rep:I"
        )
    loaded = load_config(config)
    assert loaded.dms_task_name == document["dms_task_name"]
    assert loaded.serverless == ("compute_config" in document)
    selected = [(t.schema_name, t.table_name) for t in loaded.table_mappings]
    assert selected == [(t["schema_name"], t["table_name"]) for t in document["table_mappings"]]
    for table, given in document.get("lake_tables", {}).items():
        assert loaded.lake_tables[table].key == given["key"]
        assert loaded.lake_tables[table].column_types == given.get("column_types", {})


def test_make_test_is_what_ci_runs():
    """The quick start's second command is CI's: .ci/run installs what it needs, then it."""
    assert block("readme-quick-start").commands() == block("quick-start").commands()
    assert block("quick-start").commands()[1] == "make test"
    assert "\nmake test\n" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_short_and_its_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    targets = re.findall(r"\]\((?!https?://)([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert not missing, missing


def test_every_documentation_page_is_in_the_site():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [path.relative_to(ROOT / "docs").as_posix() for path in documentation_files()[1:]]
    assert [page for page in pages if f" {page}" not in nav] == []


def test_every_bad_input_case_names_a_test_that_exists():
    text = (ROOT / "docs" / "bad-input.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 30
    defined = {
        name
        for path in TESTS.rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.MULTILINE)
    }
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row)
        assert named, f"no test named for: {row}"
        missing = [name for name in named if name not in defined]
        assert not missing, f"{missing} named in docs/bad-input.md do not exist"


def test_blocks_are_found_where_they_are():
    assert block("iam-policy").path == ROOT / "docs" / "aws" / "index.md"
    assert block("localdms-cli-session").language == "bash"
