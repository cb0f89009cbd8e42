"""DMS table-mapping rules: parse, validate and plan (reference §4).

Two stages, as on DMS:

* ``parse_table_mappings`` runs on CreateReplicationTask / ModifyReplicationTask. Malformed JSON,
  missing keys and unknown rule types are refused there with InvalidParameterValueException.
* ``plan_tables`` runs when the task starts, against the source catalog. Rules that DMS has but
  localdms does not implement fail the task with a message naming the rule (never silently ignored).

Selection: a table is selected when an ``include`` or ``explicit`` rule matches it and no ``exclude``
rule does (rule order does not matter). Wildcards: ``%`` any run, ``_`` one character, ``[...]`` a
set or range, ``[_]`` a literal underscore. Matching is case-sensitive.

Transformations: for each schema, table and column, the matching rule with the lowest rule-id wins
(DMS applies one transformation action per object).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from localdms.exceptions import InvalidParameterValueException

RULE_TYPES = ("selection", "transformation", "table-settings", "post-processing", "object-mapping")
SELECTION_ACTIONS = ("include", "exclude", "explicit")
TABLE_TYPES = ("table", "view", "all")
FILTER_OPERATORS = ("lte", "ste", "gte", "eq", "noteq", "between", "notbetween", "null", "notnull")
NEGATIVE_OPERATORS = ("noteq", "notbetween", "notnull")
NAMING_ACTIONS = (
    "rename",
    "convert-lowercase",
    "convert-uppercase",
    "add-prefix",
    "remove-prefix",
    "replace-prefix",
    "add-suffix",
    "remove-suffix",
    "replace-suffix",
)
SUPPORTED_TRANSFORMATIONS = {
    "schema": NAMING_ACTIONS,
    "table": NAMING_ACTIONS,
    "column": (*NAMING_ACTIONS, "remove-column", "include-column"),
}


class MappingError(Exception):
    """A rule that cannot be applied at task start; the task fails with this message."""


@dataclass(frozen=True)
class SourceColumn:
    """A column of a source table, as the catalog describes it."""

    name: str
    type_name: str
    """``format_type`` output, e.g. ``numeric(12,2)``, ``timestamp with time zone``."""
    base_type: str
    """``pg_type.typname`` of the column's base type, e.g. ``numeric``, ``timestamptz``, ``_int4``."""


@dataclass(frozen=True)
class SourceTable:
    """A table or view in the source database."""

    schema: str
    name: str
    kind: str  # "table" or "view"
    columns: tuple[SourceColumn, ...]
    estimated_rows: int = 0


@dataclass(frozen=True)
class TablePlan:
    """What to load for one selected table, after every rule is applied."""

    source: SourceTable
    target_schema: str
    target_table: str
    columns: tuple[tuple[SourceColumn, str], ...]
    """Source column and its target (output) name, in table order."""
    where: sql.Composable | None = None
    load_order: int = 0


@dataclass(frozen=True)
class Rule:
    """One rule of the mapping document, keys as DMS spells them."""

    rule_type: str
    rule_id: int
    rule_name: str
    rule_action: str
    body: dict[str, Any] = field(hash=False, compare=False)

    @property
    def locator(self) -> dict[str, Any]:
        locator = self.body.get("object-locator") or {}
        return locator if isinstance(locator, dict) else {}

    def describe(self) -> str:
        return f"rule {self.rule_name!r} (rule-id {self.rule_id})"


def _bad(message: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"Invalid table mappings: {message}")


def parse_table_mappings(document: str) -> list[Rule]:
    """Parse and validate a TableMappings JSON document.

    Args:
        document: the TableMappings string as CreateReplicationTask receives it.

    Returns:
        The rules, in document order.

    Raises:
        InvalidParameterValueException: malformed JSON, a missing or ill-typed key, an unknown rule
            type or selection action, a duplicate rule-id or rule-name, no selection rule.

    Example:
        >>> rules = parse_table_mappings('{"rules": [{"rule-type": "selection", "rule-id": "1",'
        ...     ' "rule-name": "1", "rule-action": "include",'
        ...     ' "object-locator": {"schema-name": "public", "table-name": "%"}}]}')
        >>> rules[0].rule_action
        'include'
    """
    try:
        parsed = json.loads(document)
    except (TypeError, ValueError) as exc:
        raise _bad(f"the document is not valid JSON ({exc}).") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("rules"), list):
        raise _bad('expected a JSON object with a "rules" array.')
    rules: list[Rule] = []
    ids: set[int] = set()
    names: set[str] = set()
    for position, raw in enumerate(parsed["rules"], start=1):
        rules.append(_parse_rule(position, raw, ids, names))
    if not any(rule.rule_type == "selection" for rule in rules):
        raise _bad("at least one selection rule is required.")
    return rules


def _parse_rule(position: int, raw: Any, ids: set[int], names: set[str]) -> Rule:
    if not isinstance(raw, dict):
        raise _bad(f"rule #{position} is not a JSON object.")
    rule_type = raw.get("rule-type")
    if rule_type not in RULE_TYPES:
        raise _bad(
            f"rule #{position} has rule-type {rule_type!r}; valid rule types: {', '.join(RULE_TYPES)}."
        )
    try:
        rule_id = int(str(raw.get("rule-id")))
    except ValueError as exc:
        raise _bad(
            f"rule #{position} needs a numeric rule-id, got {raw.get('rule-id')!r}."
        ) from exc
    rule_name = str(raw.get("rule-name", rule_id))
    if rule_id in ids or rule_name in names:
        raise _bad(f"rule #{position}: rule-id {rule_id} or rule-name {rule_name!r} is not unique.")
    ids.add(rule_id)
    names.add(rule_name)
    action = raw.get("rule-action", "")
    rule = Rule(rule_type, rule_id, rule_name, str(action), raw)
    if rule_type in ("selection", "transformation"):
        locator = raw.get("object-locator")
        if not isinstance(locator, dict) or not isinstance(locator.get("schema-name"), str):
            raise _bad(f"{rule.describe()} needs an object-locator with a schema-name.")
    if rule_type == "selection":
        _validate_selection(rule)
    if rule_type == "transformation":
        target = raw.get("rule-target")
        if not isinstance(target, str):
            raise _bad(f"{rule.describe()} needs a rule-target.")
    return rule


def _validate_selection(rule: Rule) -> None:
    if rule.rule_action not in SELECTION_ACTIONS:
        raise _bad(
            f"{rule.describe()} has rule-action {rule.rule_action!r}; valid selection actions: "
            f"{', '.join(SELECTION_ACTIONS)}."
        )
    locator = rule.locator
    table_name = locator.get("table-name")
    if not isinstance(table_name, str):
        raise _bad(f"{rule.describe()} needs object-locator.table-name.")
    table_type = locator.get("table-type", "table")
    if table_type not in TABLE_TYPES:
        raise _bad(
            f"{rule.describe()} has table-type {table_type!r}; valid: {', '.join(TABLE_TYPES)}."
        )
    for key in ("schema-name", "table-name"):
        try:
            wildcard_regex(locator[key])
        except ValueError as exc:
            raise _bad(f"{rule.describe()}: {key} {locator[key]!r}: {exc}.") from exc
        if rule.rule_action == "explicit" and has_wildcard(locator[key]):
            raise _bad(f"{rule.describe()}: explicit rules take exact names, not {locator[key]!r}.")
    filters = rule.body.get("filters", [])
    if not isinstance(filters, list):
        raise _bad(f"{rule.describe()}: filters must be an array.")
    for flt in filters:
        _validate_filter(rule, flt)
    load_order = rule.body.get("load-order", 0)
    try:
        if not 0 <= int(load_order) <= 2_147_483_647:
            raise ValueError(load_order)
    except (TypeError, ValueError) as exc:
        raise _bad(f"{rule.describe()}: load-order must be 0 to 2147483647.") from exc


def _validate_filter(rule: Rule, flt: Any) -> None:
    if not isinstance(flt, dict) or flt.get("filter-type") != "source":
        raise _bad(f'{rule.describe()}: each filter needs "filter-type": "source".')
    if not isinstance(flt.get("column-name"), str):
        raise _bad(f"{rule.describe()}: each filter needs a column-name.")
    conditions = flt.get("filter-conditions")
    if not isinstance(conditions, list) or not conditions:
        raise _bad(f"{rule.describe()}: a filter needs at least one filter-condition.")
    for condition in conditions:
        operator = condition.get("filter-operator") if isinstance(condition, dict) else None
        if operator not in FILTER_OPERATORS:
            raise _bad(
                f"{rule.describe()}: filter-operator {operator!r} is not valid; valid: "
                f"{', '.join(FILTER_OPERATORS)}."
            )
        if operator in NEGATIVE_OPERATORS and len(conditions) > 1:
            raise _bad(f"{rule.describe()}: {operator} allows only one condition per filter.")
        needed = {
            "between": ("start-value", "end-value"),
            "notbetween": ("start-value", "end-value"),
        }
        for key in needed.get(operator, () if operator in ("null", "notnull") else ("value",)):
            if key not in condition:
                raise _bad(f"{rule.describe()}: filter-operator {operator} needs {key}.")


def has_wildcard(pattern: str) -> bool:
    """Whether a locator name uses DMS wildcards."""
    return any(ch in pattern for ch in "%_[")


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """Compile a DMS wildcard pattern into an anchored regular expression.

    Raises:
        ValueError: an unclosed ``[``.

    Example:
        >>> bool(wildcard_regex("ticket[_]%").match("ticket_flights"))
        True
        >>> bool(wildcard_regex("ticket[_]%").match("tickets"))
        False
    """
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                raise ValueError("unclosed '[' in wildcard")
            body = pattern[index + 1 : end]
            if not body:
                raise ValueError("empty '[]' in wildcard")
            out.append("[" + "".join("\\" + c if c in "\\^]" else c for c in body) + "]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _matches(pattern: Any, value: str) -> bool:
    return isinstance(pattern, str) and bool(wildcard_regex(pattern).match(value))


def _table_type_matches(rule: Rule, table: SourceTable) -> bool:
    wanted = str(rule.locator.get("table-type", "table"))
    return wanted in ("all", table.kind)


def _locator_matches(rule: Rule, table: SourceTable) -> bool:
    locator = rule.locator
    return _matches(locator.get("schema-name"), table.schema) and _matches(
        locator.get("table-name"), table.name
    )


def plan_tables(rules: Sequence[Rule], catalog: Iterable[SourceTable]) -> list[TablePlan]:
    """Select and transform the catalog's tables; order them as DMS loads them.

    Args:
        rules: parsed rules.
        catalog: every table and view of the source database.

    Returns:
        The plans, highest load-order first, then by schema and table name.

    Raises:
        MappingError: a rule localdms does not implement, a filter on a missing column.
    """
    _reject_unsupported(rules)
    selections = [r for r in rules if r.rule_type == "selection"]
    transformations = sorted(
        (r for r in rules if r.rule_type == "transformation"), key=lambda r: r.rule_id
    )
    plans = []
    for table in catalog:
        matching = [
            r for r in selections if _locator_matches(r, table) and _table_type_matches(r, table)
        ]
        includes = [r for r in matching if r.rule_action in ("include", "explicit")]
        if not includes or any(r.rule_action == "exclude" for r in matching):
            continue
        plans.append(_plan_table(table, includes, transformations))
    plans.sort(key=lambda p: (-p.load_order, p.source.schema, p.source.name))
    return plans


def _reject_unsupported(rules: Sequence[Rule]) -> None:
    for rule in rules:
        if rule.rule_type in ("post-processing", "object-mapping"):
            raise MappingError(
                f"Table mapping {rule.describe()}: rule-type {rule.rule_type} is not supported by "
                "localdms (it does not apply to an S3 target here)."
            )
        if rule.rule_type == "transformation":
            target = rule.body.get("rule-target")
            supported = SUPPORTED_TRANSFORMATIONS.get(str(target))
            if supported is None or rule.rule_action not in supported:
                raise MappingError(
                    f"Table mapping {rule.describe()}: rule-action {rule.rule_action!r} on "
                    f"rule-target {target!r} is not supported by localdms. Supported: "
                    + "; ".join(
                        f"{t}: {', '.join(a)}" for t, a in SUPPORTED_TRANSFORMATIONS.items()
                    )
                )
        if rule.rule_type == "table-settings":
            parallel = rule.body.get("parallel-load")
            if isinstance(parallel, dict) and parallel.get("type", "none") != "none":
                raise MappingError(
                    f"Table mapping {rule.describe()}: parallel-load type "
                    f"{parallel.get('type')!r} is not supported by localdms; tables load whole."
                )


def _rename(rule: Rule, name: str) -> str:
    action = rule.rule_action
    value = str(rule.body.get("value", ""))
    old = str(rule.body.get("old-value", ""))
    if action == "rename":
        return value
    if action == "convert-lowercase":
        return name.lower()
    if action == "convert-uppercase":
        return name.upper()
    if action == "add-prefix":
        return value + name
    if action == "add-suffix":
        return name + value
    if action == "remove-prefix":
        return name[len(value) :] if value and name.startswith(value) else name
    if action == "remove-suffix":
        return name[: -len(value)] if value and name.endswith(value) else name
    if action == "replace-prefix":
        return value + name[len(old) :] if old and name.startswith(old) else name
    if action == "replace-suffix":
        return name[: -len(old)] + value if old and name.endswith(old) else name
    return name


def _first(rules: Sequence[Rule], target: str, predicate: Any) -> Rule | None:
    for rule in rules:
        if rule.body.get("rule-target") == target and predicate(rule.locator):
            return rule
    return None


def _plan_table(
    table: SourceTable, includes: Sequence[Rule], transformations: Sequence[Rule]
) -> TablePlan:
    schema_rule = _first(
        transformations, "schema", lambda loc: _matches(loc.get("schema-name"), table.schema)
    )
    table_rule = _first(
        transformations,
        "table",
        lambda loc: (
            _matches(loc.get("schema-name"), table.schema)
            and _matches(loc.get("table-name"), table.name)
        ),
    )

    def column_rule(column: SourceColumn) -> Rule | None:
        return _first(
            transformations,
            "column",
            lambda loc: (
                _matches(loc.get("schema-name"), table.schema)
                and _matches(loc.get("table-name", "%"), table.name)
                and _matches(loc.get("column-name"), column.name)
            ),
        )

    column_rules = {column.name: column_rule(column) for column in table.columns}
    include_mode = any(
        r is not None and r.rule_action == "include-column" for r in column_rules.values()
    )
    columns: list[tuple[SourceColumn, str]] = []
    for column in table.columns:
        rule = column_rules[column.name]
        if rule is not None and rule.rule_action == "remove-column":
            continue
        if include_mode and (rule is None or rule.rule_action != "include-column"):
            continue
        target = _rename(rule, column.name) if rule is not None else column.name
        columns.append((column, target))
    if not columns:
        raise MappingError(
            f"Table mapping: every column of {table.schema}.{table.name} was removed by the "
            "transformation rules; keep at least one column."
        )
    return TablePlan(
        source=table,
        target_schema=_rename(schema_rule, table.schema) if schema_rule else table.schema,
        target_table=_rename(table_rule, table.name) if table_rule else table.name,
        columns=tuple(columns),
        where=_where_clause(table, includes),
        load_order=max(int(r.body.get("load-order", 0)) for r in includes),
    )


def _condition(column: sql.Identifier, condition: dict[str, Any]) -> sql.Composable:
    operator = condition["filter-operator"]
    if operator in ("null", "notnull"):
        return sql.SQL("{} IS NULL" if operator == "null" else "{} IS NOT NULL").format(column)
    if operator in ("between", "notbetween"):
        template = "{} BETWEEN {} AND {}" if operator == "between" else "{} NOT BETWEEN {} AND {}"
        return sql.SQL(template).format(
            column,
            sql.Literal(str(condition["start-value"])),
            sql.Literal(str(condition["end-value"])),
        )
    symbol = {"lte": "<=", "ste": "<=", "gte": ">=", "eq": "=", "noteq": "<>"}[operator]
    return sql.SQL("{} " + symbol + " {}").format(column, sql.Literal(str(condition["value"])))


def _where_clause(table: SourceTable, includes: Sequence[Rule]) -> sql.Composable | None:
    """Filters are ANDed; the conditions inside one filter are ORed (reference §4.1)."""
    column_names = {c.name for c in table.columns}
    clauses: list[sql.Composable] = []
    for rule in includes:
        for flt in rule.body.get("filters", []):
            name = flt["column-name"]
            if name not in column_names:
                raise MappingError(
                    f"Table mapping {rule.describe()}: the filter column {name!r} does not exist in "
                    f"table {table.schema}.{table.name}; its columns are: "
                    f"{', '.join(sorted(column_names))}."
                )
            ored = sql.SQL(" OR ").join(
                _condition(sql.Identifier(name), c) for c in flt["filter-conditions"]
            )
            clauses.append(sql.SQL("({})").format(ored))
    return sql.SQL(" AND ").join(clauses) if clauses else None
