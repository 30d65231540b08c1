"""Sigma rules on the lake: the lake gives the period's candidate rows, the rules' own SQLite SQL runs on them in
memory, so the findings equal the cache's for every SigmaHQ rule the lake can answer, on the demo and the real corpus;
the rules skipped are exactly those reading a field the lake does not keep; the Athena rendering parses back as
Trino and is snapshot; the Security overview on the lake shows a Sigma finding, hostile text inert."""

from __future__ import annotations

import gzip
import json
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
import sqlglot
from sigma.collection import SigmaCollection
from sigma.rule import SigmaDetection, SigmaDetectionItem
from sqlglot import exp

from tests.conftest import cache_and_lake, open_page, point_app_at_lake, write_demo_logs
from tests.test_backend import PERIODS
from trailstream.analytics import backend, sigma, sigma_queries
from trailstream.analytics.sigma import lake as sigma_lake
from trailstream.analytics.sigma.fields import RECORD, JsonPath, parse_field
from trailstream.analytics.sigma.settings import SigmaSettings
from trailstream.cache import store
from trailstream.cache.rows import LOOKUP_COLUMN_FIELDS
from trailstream.filters import EventFilter


SIGMAHQ = Path(__file__).resolve().parents[2] / "shared" / "sigma"
SNAPSHOTS = Path(__file__).parent / "data" / "athena_sigma_queries.json"
END = datetime(2026, 3, 2, tzinfo=timezone.utc)
HOSTILE = "[click](https://evil.example) <img src=x onerror=alert(1)> =HYPERLINK(\"x\")"
HOSTILE_RULE = "5f0c6a1e-0000-4000-8000-000000000001"
OWN_RULES = f"""title: Access key made by an IAM user
id: {HOSTILE_RULE}
author: TrailStream tests
level: high
logsource: {{product: aws, service: cloudtrail}}
detection:
  sel:
    eventSource: iam.amazonaws.com
    eventName: createaccesskey
    userIdentity.type: IAMUser
  condition: sel
---
title: Any Describe call with a role
id: 5f0c6a1e-0000-4000-8000-000000000002
author: TrailStream tests
level: low
logsource: {{product: aws, service: cloudtrail}}
detection:
  sel:
    eventName|startswith: Describe
    userIdentity.type: AssumedRole
  condition: sel
---
title: Many Describe calls by one role
id: 5f0c6a1e-0000-4000-8000-000000000003
author: TrailStream tests
level: medium
correlation:
  type: event_count
  rules: [5f0c6a1e-0000-4000-8000-000000000002]
  group-by: [userIdentity.arn]
  timespan: 1h
  condition: {{gte: 3}}
---
title: Errors from a recipient account
id: 5f0c6a1e-0000-4000-8000-000000000004
author: TrailStream tests
level: low
logsource: {{product: aws, service: cloudtrail}}
detection:
  sel:
    recipientAccountId|startswith: '1'
    errorCode|contains: Denied
  condition: sel
"""


def _hostile_log(folder: Path) -> None:
    """An access key made by a user whose name is markup: the Sigma finding's summary names that user."""
    record = {"eventID": "hostile-sigma-1", "eventTime": "2026-03-01T12:00:00Z", "eventName": "CreateAccessKey",
              "eventSource": "iam.amazonaws.com", "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
              "userIdentity": {"type": "IAMUser", "userName": HOSTILE, "accountId": "111122223333"},
              "sourceIPAddress": "203.0.113.9"}
    (folder / "hostile.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [record]}).encode()))


def _rule_folders(tmp_path_factory) -> list[Path]:
    own = tmp_path_factory.mktemp("own_rules")
    (own / "own.yml").write_text(OWN_RULES)
    return [own, *([SIGMAHQ] if SIGMAHQ.exists() else [])]


def _stores(tmp_path_factory, logs: Path):
    """A cache (its rules run after import, so its findings read the stored matches) and a lake from `logs`."""
    cache, lake_folder = cache_and_lake(tmp_path_factory.mktemp("stores"), logs)
    with closing(store.open_cache(cache)) as db:
        sigma.save_rules(db, sigma.load_rules(_rule_folders(tmp_path_factory)), SigmaSettings())
        assert sigma.evaluate_new_events(db).problems == []
    return cache, lake_folder


@pytest.fixture(scope="module")
def demo_stores(tmp_path_factory):
    logs = tmp_path_factory.mktemp("demo_logs")
    write_demo_logs(logs, 3000, 11, END)
    _hostile_log(logs)
    return _stores(tmp_path_factory, logs)


@pytest.fixture(scope="module")
def corpus_stores(tmp_path_factory, corpus):
    return _stores(tmp_path_factory, corpus / "events")


def _comparable(findings) -> list[bytes]:
    return sorted(orjson.dumps(finding.to_dict(), option=orjson.OPT_SORT_KEYS) for finding in findings)


def _both(stores, event_filter: EventFilter):
    cache, lake_folder = stores
    with closing(store.open_cache_readonly(cache)) as conn:
        on_cache = sigma.detect_sigma_findings(conn, event_filter)
        rules = sigma_queries.query_lake_rules(conn)
    on_lake = sigma_lake.detect_lake_sigma(backend.duckdb_backend(str(lake_folder)), rules, event_filter)
    return on_cache, on_lake


def _skipped_titles(on_lake) -> set[str]:
    return {sentence.split('"')[1] for sentence in on_lake.skipped}


@pytest.mark.parametrize("stores", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("period", PERIODS)
def test_sigma_findings_on_the_lake_equal_the_caches_for_every_rule_the_lake_can_answer(request, stores, period):
    on_cache, on_lake = _both(request.getfixturevalue(stores), PERIODS[period])
    skipped = _skipped_titles(on_lake)
    answerable = [finding for finding in on_cache if finding.details["rule_title"] not in skipped]
    assert _comparable(on_lake.findings) == _comparable(answerable)
    assert {finding.type for finding in on_lake.findings} >= (
        {f"sigma:{HOSTILE_RULE}"} if stores == "demo_stores" and period == "all" else set())


def test_the_real_corpus_holds_sigma_findings_on_the_lake(corpus_stores):
    if not SIGMAHQ.exists():
        pytest.skip("../shared/sigma is absent")
    on_cache, on_lake = _both(corpus_stores, EventFilter())
    assert len(on_lake.findings) > 20  # the corpus holds attacks these rules are about: the equality is not vacuous


def _detection_fields(rule) -> set[str]:
    """Every field a Sigma rule's detections name (pySigma's parse, not the SQL)."""
    found = set()

    def walk(item):
        if isinstance(item, SigmaDetection):
            for child in item.detection_items:
                walk(child)
        elif isinstance(item, SigmaDetectionItem) and item.field:
            found.add(item.field)

    for detection in rule.detection.detections.values():
        walk(detection)
    return found


def _outside_lake(name: str) -> bool:
    target = parse_field(name)
    return (isinstance(target, JsonPath) and target.document == RECORD) or target in LOOKUP_COLUMN_FIELDS.values()


def test_the_rules_skipped_on_the_lake_are_exactly_those_needing_fields_outside_it(demo_stores, tmp_path_factory):
    rules = [rule for folder in _rule_folders(tmp_path_factory) for path in sorted(folder.rglob("*.yml"))
             for rule in SigmaCollection.from_yaml(path.read_text()).rules if hasattr(rule, "detection")]
    needing = {rule.title for rule in rules if any(map(_outside_lake, _detection_fields(rule)))}
    _, on_lake = _both(demo_stores, EventFilter())
    assert _skipped_titles(on_lake) == needing and "Errors from a recipient account" in needing
    assert ('rule "Errors from a recipient account" needs field recipientAccountId, which the lake does not keep'
            in on_lake.skipped)


def test_a_rule_narrows_the_lake_only_by_what_every_match_has():
    cases = {
        "event_name COLLATE NOCASE = 'A' AND user_agent LIKE '%x%' ESCAPE '\\'":
            {"event_name": {"A"}, "user_agent": {"%x%"}},
        "(event_source COLLATE NOCASE = 's' OR event_source COLLATE NOCASE = 't_1') AND x = 1":
            {"event_source": {"s", "t\\_1"}},
        "instr(principal_arn, ':role/a_b') > 0 AND principal_arn REGEXP '.+:role/a_b'":
            {"principal_arn": {"%:role/a\\_b%"}},
        "event_name COLLATE NOCASE = 'A' OR user_type COLLATE NOCASE = 'Root'": None,
        "NOT COALESCE((event_name COLLATE NOCASE = 'A'), 0)": None,
        "event_name COLLATE NOCASE = 'A' OR session_issuer_type COLLATE NOCASE = 'Role'": None,
        "EXISTS (SELECT 1 FROM json_tree(request_parameters, '$.\"a\"') AS j WHERE j.atom = 'x')": None,
    }
    for sql, expected in cases.items():
        assert sigma_queries.implied(sigma_queries._parsed(sql)) == expected, sql


def test_narrowing_keeps_sqlites_case_rules_on_the_lake(demo_stores):
    cache, lake_folder = demo_stores
    rules = ("event_name COLLATE NOCASE = 'createaccesskey'", "event_name LIKE 'describe%' ESCAPE '\\'",
             "event_source COLLATE NOCASE = 'IAM.amazonaws.COM' AND user_agent LIKE '%console%' ESCAPE '\\'",
             "event_name COLLATE NOCASE = 'Créate' OR event_name LIKE 'put_bject' ESCAPE '\\'")  # translate()'s
    with closing(store.open_cache_readonly(cache)) as conn:
        on_cache = backend.CacheBackend(conn).query("sigma_candidates", EventFilter(), rules=rules)
    on_lake = backend.duckdb_backend(str(lake_folder)).query("sigma_candidates", EventFilter(), rules=rules)
    assert on_lake.height > 10 and on_lake.equals(on_cache)


def _athena_renderings() -> dict[str, str]:
    table = backend.athena_table(type("S", (), {"database": "trailstream", "table": "events"})())
    lake_backend = backend.LakeBackend(table, "athena", lambda sql: None)
    period = EventFilter(start="2026-02-01T00:00:00Z", end="2026-03-01T00:00:00Z", accounts=("111122223333",))
    cases = {"narrowed": ("event_source COLLATE NOCASE = 'iam.amazonaws.com' AND event_name LIKE 'Create%' "
                          "ESCAPE '\\'", "user_agent LIKE '%x%' ESCAPE '\\' AND event_name COLLATE NOCASE = 'it''s'"),
             "every row": ("NOT COALESCE((event_type COLLATE NOCASE = 'AwsServiceEvent'), 0)",)}
    return {name: lake_backend.render("sigma_candidates", period, rules=rules) for name, rules in cases.items()}


def test_every_athena_sigma_query_parses_back_as_trino_and_matches_its_snapshot():
    rendered = _athena_renderings()
    for sql in rendered.values():
        assert isinstance(sqlglot.parse_one(sql, read="trino"), exp.Select)
    assert rendered == json.loads(SNAPSHOTS.read_text())


def test_the_security_overview_on_the_lake_shows_a_sigma_finding_with_hostile_text_inert(monkeypatch, tmp_path,
                                                                                          demo_stores):
    point_app_at_lake(monkeypatch, tmp_path, demo_stores[0], demo_stores[1])
    at = open_page("pages/security_overview.py", range="all", finding_type=f"sigma:{HOSTILE_RULE}")
    assert not at.exception
    assert any(HOSTILE in text.value for text in at.text)  # the summary, as plain text
    assert any("Access key made by an IAM user" in str(box.label) for box in at.expander)
    notes = "\n".join(caption.value for caption in at.caption).replace("\\", "")  # captions are markdown-escaped
    assert "the Sigma rules' included" in notes and "needs field recipientAccountId, which the lake" in notes
    shown = [element.value for element in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error)]
    shown += [str(box.label) for box in at.expander]
    assert not any("[click](" in str(value) for value in shown)  # never a live link: escaped or plain text


def test_the_detection_rules_page_says_which_rules_the_lake_cannot_answer(monkeypatch, tmp_path, demo_stores):
    point_app_at_lake(monkeypatch, tmp_path, demo_stores[0], demo_stores[1])
    at = open_page("pages/detection_rules.py")
    assert not at.exception
    [table] = [frame.value for frame in at.dataframe if "lake" in frame.value.columns]
    lake = dict(zip(table["title"], table["lake"]))
    assert lake["Errors from a recipient account"] == "needs field recipientAccountId, which the lake does not keep"
    assert lake["Access key made by an IAM user"] == ""


def test_a_correlation_rule_finds_the_same_windows_on_the_lake(demo_stores):
    on_cache, on_lake = _both(demo_stores, EventFilter())
    correlated = [finding for finding in on_lake.findings if finding.type == "sigma:5f0c6a1e-0000-4000-8000-000000000003"]
    assert correlated and _comparable(correlated) == _comparable(
        [finding for finding in on_cache if finding.type == correlated[0].type])


def test_findings_command_on_the_lake_includes_sigma_findings_and_says_which_rules_it_skipped(
        monkeypatch, tmp_path, demo_stores, capsys):
    from trailstream import cli

    settings = point_app_at_lake(monkeypatch, tmp_path, demo_stores[0], demo_stores[1])
    assert cli.main(["--db", str(demo_stores[0]), "--config", str(settings), "findings", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert f"sigma:{HOSTILE_RULE}" in {finding["type"] for finding in json.loads(out.out)}
    assert "the Sigma rules' included" in out.err and "needs field recipientAccountId" in out.err


def test_the_lake_reads_the_columns_a_correlation_groups_by_though_no_rule_reads_them(demo_stores):
    rules, reads = ("event_name COLLATE NOCASE = 'CreateAccessKey'",), ("user_agent", "request_parameters")
    lake = backend.duckdb_backend(str(demo_stores[1]))
    assert "user_agent" not in lake.query("sigma_candidates", EventFilter(), rules=rules).columns
    found = lake.query("sigma_candidates", EventFilter(), rules=rules, reads=reads)
    assert {"user_agent", "request_parameters"} <= set(found.columns) and found["user_agent"].drop_nulls().len() > 0
    with closing(store.open_cache_readonly(demo_stores[0])) as conn:
        assert found.equals(backend.CacheBackend(conn).query("sigma_candidates", EventFilter(), rules=rules,
                                                             reads=reads))
