"""Applying table-mapping rules to the source catalog (AWS DMS User Guide: "Using table mapping
to specify task settings", CHAP_Tasks.CustomizingTasks.TableMapping).

Two stages, as on DMS:

* ``validate_table_mappings`` runs on CreateReplicationTask / ModifyReplicationTask (the document
  rules live in ``dms_spec.table_mappings``): a bad document is an InvalidParameterValueException.
* ``plan_tables`` runs when the task starts, against the source catalog. Rules that DMS has but
  localdms does not implement fail the task with a message naming the rule (never silently ignored).

Selection: a table is selected when an ``include`` or ``explicit`` rule matches it and no ``exclude``
rule does (rule order does not matter). Wildcards: ``%`` any run, ``_`` one character, ``[...]`` a
set or range, ``[_]`` a literal underscore. Matching is case-sensitive.

Transformations: for each schema, table and column, the matching rule with the lowest rule-id wins
(DMS applies one transformation action per object).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from dms_spec.table_mappings import (
    NAMING_ACTIONS,
    Rule,
    TableMappingsError,
    parse_table_mappings,
    wildcard_regex,
)
from localdms.exceptions import InvalidParameterValueException

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
    """``pg_type.typname`` of the column's base type, e.g. ``numeric``, ``timestamptz``, ``_int4``
    (``record`` for any composite type)."""


@dataclass(frozen=True)
class SourceTable:
    """A table or view in the source database."""

    schema: str
    name: str
    kind: str  # "table" or "view"
    columns: tuple[SourceColumn, ...]
    estimated_rows: int = 0
    primary_key: tuple[str, ...] = ()
    """The primary key's columns, in key order (none for a view)."""
    has_unique_index: bool = False
    """Whether the table has a unique index (its primary key's counts)."""
    replica_identity: str = "d"
    """``pg_class.relreplident``: ``d`` default, ``f`` full, ``i`` index, ``n`` nothing."""


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
    """Filters are ANDed; the conditions inside one filter are ORed (AWS DMS User Guide: "Using source filters", in the selection rules pages)."""
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


def validate_table_mappings(document: str) -> list[Rule]:
    """Parse a TableMappings document as CreateReplicationTask does.

    Raises:
        InvalidParameterValueException: the reason DMS would refuse it.
    """
    try:
        return parse_table_mappings(document)
    except TableMappingsError as exc:
        raise InvalidParameterValueException(str(exc)) from exc
