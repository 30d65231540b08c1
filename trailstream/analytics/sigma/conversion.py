"""Conversion: Sigma files read by pySigma and converted to SQL over `events` (loaded by sigma.loading only when
there are rule files: pySigma is slow to load)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaConditionError, SigmaError, SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaRule

from trailstream.analytics.sigma.backend import TABLE, CloudTrailBackend
from trailstream.analytics.sigma.fields import UnsafeFieldName, scalar_expression
from trailstream.analytics.sigma.loading import CONVERTED, FAILED, UNSUPPORTED, Correlation, LoadedRule, rule_link

# The correlation types evaluation.py knows how to window (the others are reported unsupported).
CORRELATION_TYPES = (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT, SigmaCorrelationType.TEMPORAL)
_SELECT_PREFIX = f"SELECT * FROM {TABLE} WHERE "


def _is_cloudtrail(rule: SigmaRule) -> bool:
    source = rule.logsource
    return (source.product or "").lower() == "aws" and (source.service or "").lower() == "cloudtrail"


def _entry(rule, path: Path, status: str, reason: str = "") -> LoadedRule:
    level = rule.level.name.lower() if getattr(rule, "level", None) else ""
    author = rule.author or "unknown author"
    return LoadedRule(
        rule_id=str(rule.id or rule.name or f"{path.name}:{rule.title}"), title=rule.title or path.name,
        path=os.fspath(path), status=status, reason=reason, level=level, author=author, link=rule_link(path),
        description=(rule.description or "").strip(),
        kind="correlation" if isinstance(rule, SigmaCorrelationRule) else "rule",
    )


def _parse_file(path: Path) -> tuple[list, LoadedRule | None]:
    """The rules of one file, or a failed entry saying why the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], LoadedRule(path.name, path.name, os.fspath(path), FAILED, f"cannot read the file ({exc})")
    if "cloudtrail" not in text.lower() and "correlation" not in text:
        return [], None  # another product's rule: not ours to list
    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except (yaml.YAMLError, SigmaError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [], LoadedRule(path.name, path.name, os.fspath(path), FAILED, f"not a readable Sigma file: {reason}")
    if collection.errors:
        return [], LoadedRule(path.name, path.name, os.fspath(path), FAILED, _reason(collection.errors[0]))
    return collection.rules, None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _convert(backend: CloudTrailBackend, rule: SigmaRule, path: Path) -> LoadedRule:
    """A detection rule's WHERE clause, or why it has none."""
    try:
        backend.convert_rule(rule)
        # A rule a correlation refers to outputs nothing itself and is left unfinalized: read the result instead.
        queries = [query.removeprefix(_SELECT_PREFIX) for query in rule.get_conversion_result()]
    except UnsafeFieldName as exc:
        return _entry(rule, path, FAILED, str(exc))
    except SigmaFeatureNotSupportedByBackendError as exc:
        return _entry(rule, path, UNSUPPORTED, _reason(exc))
    except SigmaConditionError as exc:
        if any("|" in condition for condition in rule.detection.condition):
            return _entry(rule, path, UNSUPPORTED, "uses the retired aggregation syntax (count() by, near); "
                                                   "SigmaHQ replaced it with correlation rules")
        return _entry(rule, path, FAILED, _reason(exc))
    except (SigmaError, ValueError, TypeError, NotImplementedError, RecursionError) as exc:
        return _entry(rule, path, FAILED, _reason(exc))
    if len(queries) != 1:
        return _entry(rule, path, UNSUPPORTED, "converts to more than one query")
    entry = _entry(rule, path, CONVERTED)
    entry.where = queries[0]
    return entry


def _correlate(rule: SigmaCorrelationRule, path: Path, converted: dict[str, LoadedRule],
               collection: SigmaCollection) -> LoadedRule:
    """A correlation rule over converted CloudTrail rules, or why it cannot run."""
    if rule.aliases.aliases:
        return _entry(rule, path, UNSUPPORTED, "correlation field aliases are not supported")
    if rule.type not in CORRELATION_TYPES:
        return _entry(rule, path, UNSUPPORTED, f"correlation type {rule.type.name.lower()} is not supported "
                                               "(event_count, value_count and temporal are)")
    try:
        rule.resolve_rule_references(collection)
        ids = [str(reference.rule.id or reference.rule.name) for reference in rule.referenced_rules]
        missing = [rule_id for rule_id in ids if rule_id not in converted]
        if missing:
            return _entry(rule, path, UNSUPPORTED, f"refers to rules that are not converted CloudTrail rules: "
                                                   f"{', '.join(missing)}")
        fields = list(rule.group_by or [])
        fieldref = rule.condition.fieldref
        value = scalar_expression(fieldref if isinstance(fieldref, str) else fieldref[0]) if fieldref else None
        entry = _entry(rule, path, CONVERTED)
        entry.correlation = Correlation(
            type=rule.type.name.lower(), rule_ids=ids, group_by=[scalar_expression(name) for name in fields],
            group_fields=fields, seconds=rule.timespan.seconds, op=rule.condition.op.name.lower(),
            count=rule.condition.count, value=value,
        )
        return entry
    except UnsafeFieldName as exc:
        return _entry(rule, path, FAILED, str(exc))
    except (SigmaError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        return _entry(rule, path, FAILED, _reason(exc))


def convert_files(files: list[Path]) -> list[LoadedRule]:
    """Every CloudTrail rule and correlation of the files, each converted or refused with its reason."""
    entries: list[LoadedRule] = []
    parsed: list[tuple] = []
    for path in files:
        rules, failure = _parse_file(path)
        if failure:
            entries.append(failure)
        parsed.extend((rule, path) for rule in rules)
    backend = CloudTrailBackend()
    converted = {}
    for rule, path in parsed:
        if isinstance(rule, SigmaRule) and _is_cloudtrail(rule):
            entry = _convert(backend, rule, path)
            entries.append(entry)
            if entry.runnable:
                converted[entry.rule_id] = entry
    collection = SigmaCollection([rule for rule, _ in parsed])
    for rule, path in parsed:
        if isinstance(rule, SigmaCorrelationRule):
            entries.append(_correlate(rule, path, converted, collection))
    return entries
