import json

import pytest

from dms_spec.table_mappings import TableMappingsError, parse_table_mappings, wildcard_regex
from localdms.exceptions import InvalidParameterValueException
from localdms.table_mappings import (
    MappingError,
    SourceColumn,
    SourceTable,
    plan_tables,
    validate_table_mappings,
)

pytestmark = pytest.mark.unit


def table(schema: str, name: str, *columns: str, kind: str = "table") -> SourceTable:
    return SourceTable(
        schema, name, kind, tuple(SourceColumn(c, "text", "text") for c in columns or ("id",))
    )


def selection(rule_id: int, schema: str, name: str, action: str = "include", **extra) -> dict:
    return {
        "rule-type": "selection", "rule-id": str(rule_id), "rule-name": f"r{rule_id}",
        "rule-action": action, "object-locator": {"schema-name": schema, "table-name": name}, **extra,
    }  # fmt: skip


def transformation(rule_id: int, target: str, action: str, locator: dict, **extra) -> dict:
    return {
        "rule-type": "transformation", "rule-id": str(rule_id), "rule-name": f"t{rule_id}",
        "rule-action": action, "rule-target": target, "object-locator": locator, **extra,
    }  # fmt: skip


def plan(rules: list[dict], catalog: list[SourceTable]):
    return plan_tables(parse_table_mappings(json.dumps({"rules": rules})), catalog)


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("%", "anything", True),
        ("ticket%", "tickets", True),
        ("ticket_", "tickets", True),
        ("ticket_", "ticket", False),
        ("ticket[_]flights", "ticket_flights", True),
        ("ticket[_]flights", "ticketXflights", False),
        ("t[a-c]x", "tbx", True),
        ("t[a-c]x", "tdx", False),
        ("Orders", "orders", False),  # case-sensitive
        ("a.b", "axb", False),  # regex characters are literal
    ],
)
def test_wildcards(pattern, value, matches):
    assert bool(wildcard_regex(pattern).match(value)) is matches


def test_include_then_exclude_in_any_order():
    catalog = [table("public", "orders"), table("public", "dms_audit"), table("other", "orders")]
    rules = [selection(1, "public", "dms%", "exclude"), selection(2, "public", "%")]
    assert [(p.source.schema, p.source.name) for p in plan(rules, catalog)] == [
        ("public", "orders")
    ]


def test_views_only_with_table_type():
    catalog = [table("public", "t"), table("public", "v", kind="view")]
    assert [p.source.name for p in plan([selection(1, "public", "%")], catalog)] == ["t"]
    rules = [
        selection(
            1,
            "public",
            "%",
            **{"object-locator": {"schema-name": "public", "table-name": "%", "table-type": "all"}},
        )
    ]
    assert [p.source.name for p in plan(rules, catalog)] == ["t", "v"]


def test_load_order_higher_first():
    catalog = [table("s", "a"), table("s", "b"), table("s", "c")]
    rules = [selection(1, "s", "%"), selection(2, "s", "c", **{"load-order": 5})]
    assert [p.source.name for p in plan(rules, catalog)] == ["c", "a", "b"]


def test_lowest_rule_id_wins_per_object():
    catalog = [table("s", "orders", "id", "Name")]
    rules = [
        selection(1, "s", "%"),
        transformation(
            3, "table", "rename", {"schema-name": "s", "table-name": "%"}, value="later"
        ),
        transformation(
            2, "table", "add-suffix", {"schema-name": "s", "table-name": "orders"}, value="_v2"
        ),
        transformation(
            4,
            "column",
            "convert-lowercase",
            {"schema-name": "s", "table-name": "%", "column-name": "%"},
        ),
        transformation(
            5,
            "schema",
            "replace-prefix",
            {"schema-name": "%"},
            **{"old-value": "s", "value": "raw_s"},
        ),
    ]
    (result,) = plan(rules, catalog)
    assert (result.target_schema, result.target_table) == ("raw_s", "orders_v2")
    assert [name for _, name in result.columns] == ["id", "name"]


@pytest.mark.parametrize(
    ("action", "extra", "expected"),
    [
        ("remove-prefix", {"value": "tbl_"}, "orders_old"),
        ("remove-suffix", {"value": "_old"}, "tbl_orders"),
        ("replace-suffix", {"old-value": "_old", "value": "_new"}, "tbl_orders_new"),
        ("convert-uppercase", {}, "TBL_ORDERS_OLD"),
        ("add-prefix", {"value": "x_"}, "x_tbl_orders_old"),
    ],
)
def test_renaming_actions(action, extra, expected):
    catalog = [table("s", "tbl_orders_old")]
    rules = [
        selection(1, "s", "%"),
        transformation(2, "table", action, {"schema-name": "s", "table-name": "%"}, **extra),
    ]
    assert plan(rules, catalog)[0].target_table == expected


def test_include_column_keeps_only_included_columns():
    catalog = [table("s", "t", "a", "b", "c")]
    rules = [
        selection(1, "s", "t"),
        transformation(
            2,
            "column",
            "include-column",
            {"schema-name": "s", "table-name": "t", "column-name": "c"},
        ),
        transformation(
            3,
            "column",
            "include-column",
            {"schema-name": "s", "table-name": "t", "column-name": "a"},
        ),
    ]
    assert [name for _, name in plan(rules, catalog)[0].columns] == ["a", "c"]


def test_removing_every_column_is_an_error():
    catalog = [table("s", "t", "a")]
    rules = [
        selection(1, "s", "t"),
        transformation(
            2,
            "column",
            "remove-column",
            {"schema-name": "s", "table-name": "t", "column-name": "%"},
        ),
    ]
    with pytest.raises(MappingError, match=r"every column of s\.t was removed"):
        plan(rules, catalog)


def test_filters_become_a_where_clause_with_quoted_names_and_literals():
    catalog = [table("s", "t", "id", "na'me")]
    rules = [selection(1, "s", "t", filters=[
        {"filter-type": "source", "column-name": "id", "filter-conditions": [
            {"filter-operator": "gte", "value": "10"}, {"filter-operator": "null"}]},
        {"filter-type": "source", "column-name": "na'me", "filter-conditions": [
            {"filter-operator": "notbetween", "start-value": "a", "end-value": "z'; DROP"}]},
    ])]  # fmt: skip
    where = plan(rules, catalog)[0].where
    assert where is not None
    assert where.as_string(None) == (
        """("id" >= '10' OR "id" IS NULL) AND ("na'me" NOT BETWEEN 'a' AND 'z''; DROP')"""
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "not valid JSON"),
        ('{"rules": {}}', '"rules" array'),
        ('{"rules": []}', "at least one selection rule"),
        (json.dumps({"rules": [{"rule-type": "magic", "rule-id": "1"}]}), "valid rule types: selection"),
        (json.dumps({"rules": [selection(1, "s", "t", "keep")]}), "valid selection actions: include, exclude, explicit"),
        (json.dumps({"rules": [selection(1, "s", "t"), selection(1, "s", "u")]}), "not unique"),
        (json.dumps({"rules": [selection(1, "s", "t[abc")]}), "unclosed '['"),
        (json.dumps({"rules": [selection(1, "s", "t%", "explicit")]}), "explicit rules take exact names"),
        (json.dumps({"rules": [selection(1, "s", "t", filters=[{"filter-type": "source", "column-name": "c",
            "filter-conditions": [{"filter-operator": "like", "value": "x"}]}])]}), "filter-operator 'like' is not valid"),
        (json.dumps({"rules": [selection(1, "s", "t", filters=[{"filter-type": "source", "column-name": "c",
            "filter-conditions": [{"filter-operator": "noteq", "value": "x"}, {"filter-operator": "noteq", "value": "y"}]}])]}),
         "noteq allows only one condition"),
        (json.dumps({"rules": [selection(1, "s", "t", **{"load-order": -1})]}), "load-order must be"),
    ],
)  # fmt: skip
def test_invalid_documents_are_refused_with_the_reason(document, message):
    with pytest.raises(TableMappingsError, match=message.replace("[", r"\[")):
        parse_table_mappings(document)
    with pytest.raises(InvalidParameterValueException, match=message.replace("[", r"\[")):
        validate_table_mappings(document)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (transformation(2, "column", "add-column", {"schema-name": "s", "table-name": "t", "column-name": "x"}), "add-column"),
        (transformation(2, "table-tablespace", "rename", {"schema-name": "s"}), "table-tablespace"),
        ({"rule-type": "table-settings", "rule-id": "2", "rule-name": "p", "object-locator": {"schema-name": "s", "table-name": "t"},
          "parallel-load": {"type": "ranges"}}, "parallel-load type 'ranges'"),
        ({"rule-type": "post-processing", "rule-id": "2", "rule-name": "p", "rule-action": "add-tag"}, "post-processing"),
    ],
)  # fmt: skip
def test_unimplemented_rules_fail_at_start_naming_the_rule(rule, message):
    with pytest.raises(MappingError, match=message) as excinfo:
        plan([selection(1, "s", "t"), rule], [table("s", "t")])
    assert "(rule-id 2)" in str(excinfo.value)
