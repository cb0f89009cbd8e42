"""The DMS table-mapping document: its rules, their validation, and DMS wildcards (AWS DMS
User Guide: CHAP_Tasks.CustomizingTasks.TableMapping and its selection, transformation and
wildcard pages).

Shared by the flow (which validates a job's rules before any AWS call) and localdms (which refuses
the same documents on CreateReplicationTask). Errors raise ``TableMappingsError`` with a message
that names the rule and the valid values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

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


class TableMappingsError(ValueError):
    """A TableMappings document DMS would refuse."""


def _bad(message: str) -> TableMappingsError:
    return TableMappingsError(f"Invalid table mappings: {message}")


def parse_table_mappings(document: str) -> list[Rule]:
    """Parse and validate a TableMappings JSON document.

    Args:
        document: the TableMappings string as CreateReplicationTask receives it.

    Returns:
        The rules, in document order.

    Raises:
        TableMappingsError: malformed JSON, a missing or ill-typed key, an unknown rule
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


def renames_schemas_or_tables(document: str) -> bool:
    """Whether a transformation rule changes a schema's or table's name (and so its S3 folder,
    since DMS writes under the target names while its table statistics name the sources).

    Example:
        >>> import json
        >>> select = {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
        ...           "rule-action": "include", "object-locator": {"schema-name": "s", "table-name": "%"}}
        >>> def rename(target):
        ...     return {"rule-type": "transformation", "rule-id": "2", "rule-name": "2",
        ...             "rule-target": target, "rule-action": "add-prefix", "value": "raw_",
        ...             "object-locator": {"schema-name": "s", "table-name": "%", "column-name": "%"}}
        >>> [renames_schemas_or_tables(json.dumps({"rules": [select, rename(target)]}))
        ...  for target in ("table", "column")]
        [True, False]
    """
    return any(
        rule.rule_type == "transformation"
        and rule.body.get("rule-target") in ("schema", "table")
        and rule.rule_action in NAMING_ACTIONS
        for rule in parse_table_mappings(document)
    )


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
