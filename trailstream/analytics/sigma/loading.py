"""Loading: folders of Sigma files become rules with a state each (converted, unsupported or failed, with the
reason), so one broken or hostile file never stops the others. The files are read and converted by
sigma.conversion, loaded only when there are files: pySigma takes a seventh of a second to load, on every post-sync
step."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CONVERTED, UNSUPPORTED, FAILED = "converted", "unsupported", "failed"
RULE_SUFFIXES = (".yml", ".yaml")
SIGMAHQ_URL = "https://github.com/SigmaHQ/sigma/blob/master/"


@dataclass
class Correlation:
    """What a correlation rule counts: which rules' matches, grouped by what, within how long, compared how."""

    type: str
    rule_ids: list[str]
    group_by: list[str]  # SQL expressions, one per group-by field
    group_fields: list[str]
    seconds: int
    op: str
    count: float
    value: str | None = None  # SQL expression of the value_count field


@dataclass
class LoadedRule:
    """One rule as TrailStream sees it: identity and attribution, its state, and what evaluation runs."""

    rule_id: str
    title: str
    path: str
    status: str
    reason: str = ""
    level: str = ""
    author: str = ""
    link: str = ""
    description: str = ""
    kind: str = "rule"
    where: str | None = None
    correlation: Correlation | None = None

    @property
    def runnable(self) -> bool:
        return self.status == CONVERTED


@dataclass
class RuleSet:
    """Every CloudTrail rule found under the configured paths, and the paths that could not be read."""

    rules: list[LoadedRule] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, LoadedRule]:
        return {rule.rule_id: rule for rule in self.rules}


def rule_files(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The .yml/.yaml files under each path (files are taken as they are), and a sentence per missing path."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(item for item in path.rglob("*") if item.suffix in RULE_SUFFIXES and item.is_file()))
        else:
            problems.append(f"rule path {os.fspath(path)} does not exist; fix [sigma] rule_paths in the settings file")
    return files, problems


def rule_link(path: Path) -> str:
    """Where the rule is published: its SigmaHQ page for a file in a SigmaHQ checkout or release (rules*/cloud/...),
    else its file."""
    parts = path.resolve().parts
    for index, part in enumerate(parts[:-2]):
        if (part.startswith("rules") or part in ("deprecated", "unsupported")) and parts[index + 1] == "cloud":
            return SIGMAHQ_URL + "/".join(parts[index:])
    return path.resolve().as_uri()


def load_rules(paths: Iterable[str | os.PathLike]) -> RuleSet:
    """Every CloudTrail rule and correlation under `paths`, each converted or refused with its reason."""
    files, problems = rule_files(paths)
    ruleset = RuleSet(problems=problems)
    if files:
        from trailstream.analytics.sigma.conversion import convert_files

        ruleset.rules = convert_files(files)
    return _dedupe(ruleset)


def configured_rules(sigma) -> RuleSet:
    """The rules under [sigma] rule_paths; without them, the `rules fetch` folder when it exists (else no rules)."""
    return load_rules([path for path in sigma.rule_paths if sigma.explicit or path.exists()])


def _dedupe(ruleset: RuleSet) -> RuleSet:
    """A rule ID found twice (a checkout and a copy) keeps its first file; the other is reported, not run."""
    seen: set[str] = set()
    for entry in ruleset.rules:
        if entry.rule_id in seen and entry.status != FAILED:
            entry.status, entry.reason = FAILED, "another file already has this rule ID; this copy is not run"
            entry.rule_id = f"{entry.rule_id}@{entry.path}"
        seen.add(entry.rule_id)
    return ruleset
