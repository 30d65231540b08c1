"""An independent reading of Sigma semantics over raw CloudTrail records, for checking the SQL the rules become.

Written from the Sigma specification, not from pySigma: YAML in, a yes/no per record out. Case-insensitive string
comparison, `*`/`?` wildcards, lists as OR (AND with |all), a field below an array matching when any element does,
JSON booleans as the words true/false, null as "no value", and the condition grammar the CloudTrail rules use.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import orjson
import yaml

_TOKENS = re.compile(r"\(|\)|\bnot\b|\band\b|\bor\b|\b1 of\b|\ball of\b|[A-Za-z0-9_*]+")


def field_values(record: dict, name: str) -> list:
    """Every leaf at a dotted path: arrays are walked, a final object is its JSON text, absent gives []."""
    nodes = [record]
    for segment in name.split("."):
        found = []
        for node in nodes:
            for item in node if isinstance(node, list) else [node]:
                if isinstance(item, dict) and segment in item:
                    found.append(item[segment])
        nodes = found
    leaves = []
    for node in nodes:
        for item in node if isinstance(node, list) else [node]:
            if isinstance(item, (dict, list)):
                leaves.append(orjson.dumps(item).decode())
            else:
                leaves.append(item)
    return leaves


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pattern(value: str, modifier: str | None) -> re.Pattern:
    """A Sigma string as a regular expression: unescaped * and ? are wildcards, everything else literal."""
    parts, index = [], 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value) and value[index + 1] in "*?\\":
            parts.append(re.escape(value[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
        index += 1
    body = "".join(parts)
    body = {"contains": f".*{body}.*", "startswith": f"{body}.*", "endswith": f".*{body}"}.get(modifier, body)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def _item_matches(record: dict, key: str, expected) -> bool:
    name, *modifiers = key.split("|")
    values = field_values(record, name)
    wanted = expected if isinstance(expected, list) else [expected]
    if wanted == [None]:
        return all(value is None for value in values)
    if "exists" in modifiers:
        return any(value is not None for value in values) == bool(expected)
    if "fieldref" in modifiers:
        others = [_text(v).lower() for ref in wanted for v in field_values(record, ref) if v is not None]
        return any(_text(value).lower() in others for value in values if value is not None)
    text_modifier = next((m for m in modifiers if m in ("contains", "startswith", "endswith")), None)

    def one(pattern_value) -> bool:
        if "re" in modifiers:
            regex = re.compile(str(pattern_value))
            return any(value is not None and regex.search(_text(value)) for value in values)
        regex = _pattern(_text(pattern_value), text_modifier)
        return any(value is not None and regex.fullmatch(_text(value)) for value in values)

    return all(map(one, wanted)) if "all" in modifiers else any(map(one, wanted))


def _selection_matches(record: dict, selection) -> bool:
    if isinstance(selection, list):
        return any(_selection_matches(record, item) for item in selection)
    return all(_item_matches(record, key, value) for key, value in selection.items())


def _condition(tokens: list[str], record: dict, detection: dict) -> bool:
    """Recursive descent: or > and > not > (1 of|all of) name | ( ... )."""
    position = 0

    def names(pattern: str) -> list[str]:
        regex = re.compile(re.escape(pattern).replace(r"\*", ".*") + "$")
        return [name for name in detection if name != "condition" and regex.match(name)]

    def primary() -> bool:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "(":
            value = disjunction()
            position += 1  # ")"
            return value
        if token == "not":
            return not primary()
        if token in ("1 of", "all of"):
            target = tokens[position]
            position += 1
            chosen = names("*" if target == "them" else target)
            results = [_selection_matches(record, detection[name]) for name in chosen]
            return any(results) if token == "1 of" else all(results)
        return _selection_matches(record, detection[token])

    def conjunction() -> bool:
        nonlocal position
        value = primary()
        while position < len(tokens) and tokens[position] == "and":
            position += 1
            value = primary() and value
        return value

    def disjunction() -> bool:
        nonlocal position
        value = conjunction()
        while position < len(tokens) and tokens[position] == "or":
            position += 1
            value = conjunction() or value
        return value

    return disjunction()


def rule_matches(rule: dict, record: dict) -> bool:
    """Whether a detection rule (parsed YAML) matches one raw CloudTrail record."""
    detection = rule["detection"]
    return _condition(_TOKENS.findall(detection["condition"]), record, detection)


def load_yaml_rules(text: str) -> list[dict]:
    return [document for document in yaml.safe_load_all(text) if document]


def correlation_groups(rule: dict, bases: dict[str, dict], records: list[dict]) -> set[tuple]:
    """Group keys for which some window of the correlation's timespan, ending at a matching event, meets its
    condition: events (event_count), distinct values of the condition's field (value_count), or every referenced
    rule matched (temporal)."""
    correlation = rule["correlation"]
    amount, unit = int(correlation["timespan"][:-1]), correlation["timespan"][-1]
    span = timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    condition = correlation.get("condition") or {"gte": len(correlation["rules"])}
    threshold = condition["gte"]
    hits: dict[tuple, list[tuple]] = {}
    for record in records:
        moment = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
        for slot, rule_id in enumerate(correlation["rules"]):
            if rule_matches(bases[rule_id], record):
                key = tuple(_text(field_values(record, name)[0]) for name in correlation["group-by"])
                value = field_values(record, condition["field"])[0] if "field" in condition else None
                hits.setdefault(key, []).append((moment, slot, value, record["eventID"]))
    found = set()
    for key, items in hits.items():
        for end, *_ in items:
            window = [item for item in items if end - span <= item[0] <= end]
            metric = {"event_count": len({item[3] for item in window}),
                      "value_count": len({item[2] for item in window if item[2] is not None}),
                      "temporal": len({item[1] for item in window})}[correlation["type"]]
            if metric >= threshold:
                found.add(key)
    return found
