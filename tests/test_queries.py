"""The pages' SQL: every number agrees with a direct SQL count on a real cache, and empty results keep their shape."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from trailstream import timefmt
from trailstream import catalog
from trailstream.ingest import demo, records, sync
from trailstream.cache import derived, rollups, store
from trailstream.analytics import queries
from trailstream.filters import EventFilter
from trailstream.analytics.queries import SearchQuery
from trailstream.cache import bookkeeping
from tests.test_derived import with_role_grain

ROLE_GRAIN = "role_grain(principal, user_type)"  # principals as people think of them (see test_derived)

START = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ("eu-west-1", "us-east-1")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cloudtrail_record(n: int, event_name: str, **fields) -> dict:
    """A CloudTrail record; n spreads it over time, accounts, regions and principals."""
    user = fields.pop("user", ["alice", "bob", "deploy-bot"][n % 3])
    account = fields.pop("account", ACCOUNTS[n % 2])
    record = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": f"AIDA{n:08d}",
            "arn": f"arn:aws:iam::{account}:user/{user}",
            "accountId": account,
            "accessKeyId": f"AKIA{user.upper().replace('-', '')[:8]:0<8}{n % 2}",
            "userName": user,
        },
        "eventTime": iso(START + timedelta(minutes=37 * n)),
        "eventSource": "ec2.amazonaws.com" if event_name in catalog.NETWORK_EVENTS + catalog.INSTANCE_EVENTS
        + catalog.ELASTIC_IP_EVENTS + ("DescribeInstances",) else "iam.amazonaws.com",
        "eventName": event_name,
        "awsRegion": fields.pop("region", REGIONS[(n // 2) % 2]),
        "sourceIPAddress": f"198.51.100.{n % 7}",
        "userAgent": "aws-cli/2.15.0" if n % 2 else "Mozilla/5.0 console",
        "requestParameters": fields.pop("request", None),
        "responseElements": fields.pop("response", None),
        "requestID": f"req-{n}",
        "eventID": f"00000000-0000-0000-0000-{n:012d}",
        "readOnly": event_name.startswith(("Describe", "Get", "List")),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    record.update(fields)
    return record


def fixture_records() -> list[dict]:
    """About 120 events over four days: reads, use-case changes, errors, a resource's life cycle."""
    made = []
    for n in range(80):
        extra = {"errorCode": "AccessDenied", "errorMessage": "not allowed"} if n % 9 == 0 else {}
        made.append(cloudtrail_record(n, "DescribeInstances", **extra))
    specials = [
        ("CreateSecurityGroup", {"request": {"groupName": "web", "vpcId": "vpc-1"}, "response": {"groupId": "sg-0web"}}),
        (
            "AuthorizeSecurityGroupIngress",
            {
                "request": {
                    "groupId": "sg-0web",
                    "ipPermissions": {
                        "items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                                   "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]
                    },
                }
            },
        ),
        ("RunInstances", {"request": {"instanceType": "t3.micro", "instancesSet": {"items": [{"imageId": "ami-1"}]}},
                          "response": {"instancesSet": {"items": [{"instanceId": "i-0abc", "instanceType": "t3.micro",
                                                                   "imageId": "ami-1"}]}}}),
        ("StopInstances", {"request": {"instancesSet": {"items": [{"instanceId": "i-0abc"}]}}}),
        ("AllocateAddress", {"request": {"domain": "vpc"},
                             "response": {"publicIp": "203.0.113.9", "allocationId": "eipalloc-1"}}),
        ("AssociateAddress", {"request": {"allocationId": "eipalloc-1", "instanceId": "i-0abc"}}),
        ("CreateUser", {"request": {"userName": "carol"}}),
        ("AttachUserPolicy", {"request": {"userName": "carol", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}}),
        ("CreateAccessKey", {"request": {"userName": "carol"}, "errorCode": "LimitExceeded",
                             "errorMessage": "Cannot exceed quota for AccessKeysPerUser: 2"}),
        ("DeleteSecurityGroup", {"request": {"groupId": "sg-0web"}, "errorCode": "DependencyViolation"}),
        ("TerminateInstances", {"request": {"instancesSet": {"items": [{"instanceId": "i-0abc"}]}},
                                "resources": [{"type": "AWS::EC2::Instance", "ARN": "arn:aws:ec2:eu-west-1:1:instance/i-0abc"}]}),
    ]
    for offset, (name, fields) in enumerate(specials):
        made.append(cloudtrail_record(80 + offset, name, **fields))
    # odd text for literal free-text search: a % and an _ that must not act as wildcards
    made.append(cloudtrail_record(95, "CreateUser", request={"userName": "100%_sure"}))
    return made


def save_records(db_path: Path, folder: Path, made: list[dict], per_file: int = 25) -> None:
    """Write CloudTrail-named log files and store them the way a sync does."""
    db = store.open_cache(db_path)
    run_id = bookkeeping.start_sync_run(db, "local")
    for start in range(0, len(made), per_file):
        chunk = made[start : start + per_file]
        account, region = chunk[0]["recipientAccountId"], chunk[0]["awsRegion"]
        key = f"AWSLogs/{account}/CloudTrail/{region}/{account}_CloudTrail_{region}_20261120T{start:04d}Z_x.json"
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"Records": chunk}))
        parsed = records.parse_log_file(path.read_bytes())
        store.save_parsed_file(db, bookkeeping.FileRef("local", "", key), parsed, run_id)
    bookkeeping.mark_file(db, bookkeeping.FileRef("local", "", "broken.json.gz"), "failed", "corrupt gzip data", run_id)
    bookkeeping.finish_sync_run(db, run_id, "failed", {"files": 6, "new_events": len(made), "failures": 1}, "corrupt gzip")
    db.close()


QUERY_PLANS = ("derived data", "events only")


def bypass_rollups(db_path: Path) -> None:
    """Empty the derived data and mark it behind, so readers must read `events` directly (any that still read the
    rollups or the word index would now get wrong answers)."""
    with sqlite3.connect(db_path) as conn:
        derived.clear(conn)
        conn.execute("UPDATE meta SET value = '-1' WHERE key = ?", [derived.WATERMARK_KEY])
    conn.close()


@pytest.fixture(scope="module")
def small_caches(tmp_path_factory) -> dict[str, sqlite3.Connection]:
    """fixture_records() stored through records + store twice: read through the derived data, and without it."""
    caches = {}
    for plan in QUERY_PLANS:
        folder = tmp_path_factory.mktemp("small")
        save_records(folder / "cache.db", folder / "logs", fixture_records())
        if plan == "events only":
            bypass_rollups(folder / "cache.db")
        caches[plan] = store.open_cache_readonly(folder / "cache.db")
        assert derived.is_current(caches[plan]) == (plan == "derived data")
    return caches


@pytest.fixture(scope="module", params=QUERY_PLANS)
def small_cache(request, small_caches) -> sqlite3.Connection:
    """The hand-made cache, read-only; each test runs on both query plans, which must give the same answers."""
    return small_caches[request.param]


DEMO_END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory) -> sqlite3.Connection:
    """4,000 demo events written as CloudTrail files and imported by sync (batch commits keep the rollups)."""
    folder = tmp_path_factory.mktemp("demo")
    demo.write_log_files(folder / "logs", demo.generate_records(events=4000, seed=5, end=DEMO_END), records_per_file=200)
    sync.import_paths(folder / "cache.db", [folder / "logs"], workers=1)
    return store.open_cache_readonly(folder / "cache.db")


@pytest.fixture(params=[*QUERY_PLANS, "demo events"])
def any_cache(request, small_caches, demo_cache) -> sqlite3.Connection:
    """Each cache the counting tests run on: the hand-made records (both query plans) and the demo."""
    return demo_cache if request.param == "demo events" else small_caches[request.param]


@pytest.fixture(scope="module")
def corpus_cache(corpus, tmp_path_factory) -> sqlite3.Connection:
    """The real corpus `events/` folder stored through records + store, opened read-only."""
    db_path = tmp_path_factory.mktemp("corpus") / "cache.db"
    db = store.open_cache(db_path)
    for path in sorted((corpus / "events").glob("*.json")):
        store.save_parsed_file(db, bookkeeping.FileRef("local", "", str(path)), records.parse_log_file(path.read_bytes()), None)
    db.close()
    return store.open_cache_readonly(db_path)


def first(conn, column: str, offset: int = 0) -> str:
    """The column's smallest value (or the next ones), so filters fit whichever cache a test runs on."""
    return conn.execute(f"SELECT DISTINCT {column} FROM events ORDER BY 1 LIMIT 1 OFFSET ?", [offset]).fetchone()[0]


def a_day(conn) -> EventFilter:
    day = datetime.strptime(first(conn, "event_time")[:10], "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return EventFilter(start=iso(day + timedelta(hours=12)), end=iso(day + timedelta(hours=36)))


def odd_edges(conn) -> EventFilter:
    """A period over several days that starts and ends mid-hour: whole days, whole hours and loose minutes."""
    day = datetime.strptime(first(conn, "event_time")[:10], "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return EventFilter(start=iso(day + timedelta(hours=3, minutes=17, seconds=5)),
                       end=iso(day + timedelta(days=2, hours=5, minutes=42, seconds=31)), include_read_only=False)


FILTERS = {
    "everything": lambda conn: EventFilter(),
    "one account": lambda conn: EventFilter(accounts=(first(conn, "account_id"),)),
    "one region, no reads": lambda conn: EventFilter(regions=(first(conn, "aws_region"),), include_read_only=False),
    "a day": a_day,
    "odd edges, no reads": odd_edges,
    "two accounts, two regions": lambda conn: EventFilter(
        accounts=(first(conn, "account_id"), first(conn, "account_id", 1)),
        regions=(first(conn, "aws_region"), first(conn, "aws_region", 1)),
    ),
}


def sql_count(conn, event_filter: EventFilter, extra: str = "1", params=()) -> int:
    where, filter_params = event_filter.sql()
    return conn.execute(f"SELECT count(*) FROM events WHERE {where} AND {extra}", [*filter_params, *params]).fetchone()[0]


@pytest.mark.parametrize("make_filter", FILTERS.values(), ids=FILTERS.keys())
def test_overview_totals_agree_with_sql(any_cache, make_filter):
    event_filter = make_filter(any_cache)
    totals = queries.query_overview_totals(any_cache, event_filter).row(0, named=True)
    where, params = event_filter.sql()
    principals = with_role_grain(any_cache).execute(
        f"SELECT count(DISTINCT role_grain(principal, user_type)) FROM events WHERE {where}", params).fetchone()[0]
    assert totals["events"] == sql_count(any_cache, event_filter) > 0
    assert totals["failed"] == sql_count(any_cache, event_filter, "error_code IS NOT NULL")
    assert totals["principals"] == principals
    assert totals["failed_share"] == pytest.approx(totals["failed"] / totals["events"])


@pytest.mark.parametrize("bucket", queries.BUCKETS)
@pytest.mark.parametrize("make_filter", FILTERS.values(), ids=FILTERS.keys())
def test_timeline_buckets_add_up_to_the_filtered_events(any_cache, make_filter, bucket):
    event_filter = make_filter(any_cache)
    timeline = queries.query_event_timeline(any_cache, event_filter, "event_source", bucket)
    assert timeline["events"].sum() == sql_count(any_cache, event_filter)
    assert timeline["failed"].sum() == sql_count(any_cache, event_filter, "error_code IS NOT NULL")
    assert (timeline["bucket_end"] - timeline["bucket"]).unique().to_list() == [queries.BUCKETS[bucket][1]]


def test_timeline_buckets_start_on_the_bucket_boundary(small_cache):
    timeline = queries.query_event_timeline(small_cache, EventFilter(), None, "hour")
    assert timeline["bucket"].dt.minute().unique().to_list() == [0]
    first = small_cache.execute("SELECT min(event_time) FROM events").fetchone()[0]
    assert timeline["bucket"].min().strftime("%Y-%m-%dT%H") == first[:13]


def test_bucket_follows_the_events_inside_the_period(small_cache):
    first, last = small_cache.execute("SELECT min(event_time), max(event_time) FROM events").fetchone()
    assert first >= "2026-11-19" and last < "2026-11-23"  # the hand-made events fill under three days
    assert queries.pick_bucket(small_cache, EventFilter(start="2026-11-20T00:00:00Z", end="2026-11-20T01:00:00Z")) == "10min"
    # a week or two months around them keep sub-hour bars instead of a few day-wide slabs
    assert queries.pick_bucket(small_cache, EventFilter(start="2026-11-15T00:00:00Z", end="2026-11-22T00:00:00Z")) == "10min"
    assert queries.pick_bucket(small_cache, EventFilter(start="2026-10-01T00:00:00Z", end="2026-11-27T00:00:00Z")) == "10min"
    assert queries.pick_bucket(small_cache, EventFilter(start="2025-10-01T00:00:00Z", end="2025-11-27T00:00:00Z")) == "day"


@pytest.mark.parametrize("make_filter", FILTERS.values(), ids=FILTERS.keys())
def test_top_lists_agree_with_sql_group_by(any_cache, make_filter):
    event_filter = make_filter(any_cache)
    where, params = event_filter.sql()
    for frame, column, expression in (
        (queries.query_top_event_names(any_cache, event_filter, limit=1000), "event_name", "event_name"),
        (queries.query_top_principals(any_cache, event_filter, limit=1000), "principal", ROLE_GRAIN),
    ):
        expected = dict(with_role_grain(any_cache).execute(
            f"SELECT {expression}, count(*) FROM events WHERE {where} GROUP BY 1", params).fetchall())
        assert dict(zip(frame[column], frame["events"])) == expected
        assert frame["events"].is_sorted(descending=True)


def test_account_region_counts_agree_with_sql(any_cache):
    frame = queries.query_account_region_counts(any_cache, EventFilter())
    expected = {
        (account, region): count
        for account, region, count in any_cache.execute(
            "SELECT account_id, aws_region, count(*) FROM events GROUP BY 1, 2"
        )
    }
    assert {(r["account_id"], r["aws_region"]): r["events"] for r in frame.iter_rows(named=True)} == expected


@pytest.mark.parametrize("use_case", catalog.USE_CASES)
@pytest.mark.parametrize("make_filter", FILTERS.values(), ids=FILTERS.keys())
def test_use_case_events_are_exactly_the_catalog_names(any_cache, use_case, make_filter):
    event_filter = make_filter(any_cache)
    names = catalog.USE_CASES[use_case].event_names
    frame = queries.query_use_case_events(any_cache, event_filter, use_case)
    timeline = queries.query_use_case_timeline(any_cache, event_filter, use_case)
    expected = sql_count(any_cache, event_filter, f"event_name IN ({', '.join('?' for _ in names)})", names)
    assert frame.height == timeline["events"].sum() == expected
    assert set(frame["event_name"]) <= set(names)
    assert frame["event_time"].is_sorted(descending=True)


def test_event_rows_are_capped_by_the_limit_newest_first(small_cache):
    frame = queries.query_events(small_cache, EventFilter(), limit=10)
    newest = [row[0] for row in small_cache.execute("SELECT event_id FROM events ORDER BY event_time DESC LIMIT 10")]
    assert frame["event_id"].to_list() == newest


NOTHING = EventFilter(start="2030-01-01T00:00:00Z")
PAGE_CALLS = {
    "totals": lambda c, f: queries.query_overview_totals(c, f),
    "timeline": lambda c, f: queries.query_event_timeline(c, f, bucket="hour"),
    "top event names": lambda c, f: queries.query_top_event_names(c, f),
    "top principals": lambda c, f: queries.query_top_principals(c, f),
    "account region": lambda c, f: queries.query_account_region_counts(c, f),
    "events": lambda c, f: queries.query_events(c, f),
    "use case": lambda c, f: queries.query_use_case_events(c, f, "network"),
    "use case timeline": lambda c, f: queries.query_use_case_timeline(c, f, "iam", bucket="day"),
    "error counts": lambda c, f: queries.query_error_counts(c, f),
    "error events": lambda c, f: queries.query_error_events(c, f, "AccessDenied"),
    "search": lambda c, f: queries.query_search(c, f, SearchQuery(text="a")),
    "principal activity": lambda c, f: queries.query_principal_activity(c, f, "alice", bucket="hour"),
    "principal origins": lambda c, f: queries.query_principal_origins(c, f, "alice", "user_agent"),
    "principal events": lambda c, f: queries.query_principal_events(c, f, "alice"),
    "resource history": lambda c, f: queries.query_resource_history(c, f, "i-0abc"),
}


@pytest.mark.parametrize("call", PAGE_CALLS.values(), ids=PAGE_CALLS.keys())
def test_empty_results_keep_their_columns_and_dtypes(small_cache, call):
    empty, full = call(small_cache, NOTHING), call(small_cache, EventFilter())
    assert empty.height in (0, 1) and full.height > 0  # totals: one row of zeros
    assert empty.schema == full.schema
    assert all(dtype != pl.Null for dtype in empty.schema.values())


def test_blank_resource_id_finds_nothing(small_cache):
    assert queries.query_resource_history(small_cache, EventFilter(), "  ").schema == pl.Schema(queries.EVENT_SCHEMA)
    assert queries.query_resource_history(small_cache, EventFilter(), "  ").height == 0


def test_empty_event_tables_have_the_event_schema(small_cache):
    assert queries.query_events(small_cache, NOTHING).schema == pl.Schema(queries.EVENT_SCHEMA)
    assert queries.query_events(small_cache, EventFilter()).schema == pl.Schema(queries.EVENT_SCHEMA)


def test_error_counts_agree_with_sql(any_cache):
    counts = queries.query_error_counts(any_cache, EventFilter())
    expected = dict(
        any_cache.execute("SELECT error_code, count(*) FROM events WHERE error_code IS NOT NULL GROUP BY 1").fetchall()
    )
    per_code = counts.group_by("error_code").agg(pl.col("events").sum())
    assert dict(zip(per_code["error_code"], per_code["events"])) == expected
    first_seen = queries.query_error_first_seen(any_cache, EventFilter(start="2026-11-22T00:00:00Z"))
    assert set(first_seen["error_code"]) == set(expected)  # first seen ever ignores the period


def test_error_events_drill_into_one_combination(small_cache):
    frame = queries.query_error_events(small_cache, EventFilter(), "AccessDenied", "ec2.amazonaws.com", "DescribeInstances")
    assert frame.height == sql_count(small_cache, EventFilter(), "error_code = 'AccessDenied'")
    assert set(frame["error_code"]) == {"AccessDenied"}


def search_ids(conn, search: SearchQuery, event_filter=EventFilter()) -> set[str]:
    return set(queries.query_search(conn, event_filter, search, limit=None)["event_id"])


def sql_ids(conn, where: str, params=()) -> set[str]:
    return {row[0] for row in conn.execute(f"SELECT event_id FROM events WHERE {where}", params)}


SEARCHES = {
    "event name": (SearchQuery(event_name="StopInstances"), "event_name = 'StopInstances'"),
    "user name": (SearchQuery(user_name="bob"), "principal = 'bob'"),
    "event source": (SearchQuery(event_source="iam.amazonaws.com"), "event_source = 'iam.amazonaws.com'"),
    "access key": (SearchQuery(access_key_id="AKIAALICE0000"), "access_key_id = 'AKIAALICE0000'"),
    "read-only": (SearchQuery(read_only=True), "read_only = 1"),
    "writes": (SearchQuery(read_only=False), "coalesce(read_only, 0) = 0"),
    "event id": (SearchQuery(event_id="00000000-0000-0000-0000-000000000081"), "event_id LIKE '%81'"),
    "source ip": (SearchQuery(source_ip="198.51.100.3"), "source_ip = '198.51.100.3'"),
    "error code": (SearchQuery(error_code="AccessDenied"), "error_code = 'AccessDenied'"),
    "resource type": (SearchQuery(resource_type="AWS::EC2::Instance"), "resources LIKE '%AWS::EC2::Instance%'"),
    "resource name": (SearchQuery(resource_name="i-0abc"),
                      "request_parameters LIKE '%i-0abc%' OR response_elements LIKE '%i-0abc%' OR resources LIKE '%i-0abc%'"),
    "free text, any case": (SearchQuery(text="QUOTA FOR"), "error_message LIKE '%quota for%'"),
    "free text, literal % and _": (SearchQuery(text="100%_sure"), "request_parameters LIKE '%100!%!_sure%' ESCAPE '!'"),
    "two fields": (SearchQuery(user_name="alice", error_code="AccessDenied"),
                   "principal = 'alice' AND error_code = 'AccessDenied'"),
}


@pytest.mark.parametrize("search, where", SEARCHES.values(), ids=SEARCHES.keys())
def test_search_finds_what_sql_finds(small_cache, search, where):
    expected = sql_ids(small_cache, where)
    assert expected, "the fixture must hold something to find"
    assert search_ids(small_cache, search) == expected


def test_free_text_wildcards_are_literal(small_cache):
    assert search_ids(small_cache, SearchQuery(text="100%_sure")) == search_ids(small_cache, SearchQuery(text="100%_SURE"))
    assert search_ids(small_cache, SearchQuery(text="100__sure")) == set()


def test_search_respects_the_period(small_cache):
    period = EventFilter(start="2026-11-21T00:00:00Z", end="2026-11-22T00:00:00Z")
    found = queries.query_search(small_cache, period, SearchQuery(event_name="DescribeInstances"), limit=None)
    assert found.height == sql_count(small_cache, period, "event_name = 'DescribeInstances'")


@pytest.mark.parametrize("search", [s for s, _ in SEARCHES.values()] + [SearchQuery()])
def test_search_query_survives_a_json_round_trip(search):
    saved = json.loads(json.dumps(search.to_dict()))
    assert SearchQuery.from_dict(saved) == search


def test_saved_search_from_a_newer_version_still_loads():
    assert SearchQuery.from_dict({"event_name": " RunInstances ", "colour": "red"}) == SearchQuery(event_name="RunInstances")


@pytest.mark.parametrize("make_filter", FILTERS.values(), ids=FILTERS.keys())
def test_principal_activity_and_origins_agree_with_sql(any_cache, make_filter):
    event_filter = make_filter(any_cache)
    where, params = event_filter.sql()
    principals = queries.query_principals(any_cache, event_filter)
    roles = principals.filter(pl.col("user_type") == "AssumedRole")  # a role: every session of it, through the index
    principal = (roles if roles.height else principals).item(0, "principal")
    groups = {
        "activity": ("event_source, event_name, aws_region",
                     queries.query_principal_activity(any_cache, event_filter, principal, "day")),
        **{origin: (origin, queries.query_principal_origins(any_cache, event_filter, principal, origin))
           for origin in queries.PRINCIPAL_ORIGINS},
        "sessions": ("principal", queries.query_principal_sessions(any_cache, event_filter, principal)),
    }
    for label, (columns, frame) in groups.items():
        expected = sorted(
            tuple(row)
            for row in with_role_grain(any_cache).execute(
                f"SELECT {columns}, count(*), count(nullif(error_code, '')), min(event_time), max(event_time) "
                f"FROM events WHERE {where} AND {ROLE_GRAIN} = ? GROUP BY {columns}", [*params, principal]
            )
        )
        keys = [c.strip() for c in columns.split(",")]
        found = (frame.group_by(keys).agg(pl.col("events").sum(), pl.col("failed").sum(),
                                          pl.col("first_seen").min(), pl.col("last_seen").max())
                 .with_columns(pl.col("first_seen", "last_seen").dt.strftime(timefmt.TIME_FORMAT)))
        assert sorted(found.rows()) == expected, label


@pytest.mark.parametrize("principal", ["bob", "Admin", "account/1"])
def test_principal_activity_reads_only_its_covering_index(small_cache, principal):
    where, params = EventFilter().sql("e")
    actor, actor_params = rollups.actor_where("e", principal)
    plan = " ".join(
        row[3]
        for row in small_cache.execute(
            f"EXPLAIN QUERY PLAN SELECT e.event_source, e.event_name, e.aws_region, e.source_ip, e.account_id, "
            f"e.access_key_id, e.error_code, e.event_time, e.principal, e.user_type FROM events e "
            f"INDEXED BY {queries.PRINCIPAL_INDEX} WHERE {where} AND {actor}",
            [*params, *actor_params],
        )
    )
    assert f"COVERING INDEX {queries.PRINCIPAL_INDEX}" in plan


def test_principal_origins_refuse_an_unknown_column(small_cache):
    with pytest.raises(ValueError, match="source_ip"):
        queries.query_principal_origins(small_cache, EventFilter(), "bob", "request_parameters")


@pytest.mark.parametrize("make_filter", FILTERS.values(), ids=FILTERS.keys())
def test_principal_first_and_last_seen_agree_with_sql(any_cache, make_filter):
    event_filter = make_filter(any_cache)
    where, params = event_filter.sql()
    expected = {
        row[0]: (row[1], row[2], row[3])
        for row in with_role_grain(any_cache).execute(
            f"SELECT {ROLE_GRAIN}, count(*), min(event_time), max(event_time) FROM events WHERE {where} GROUP BY 1",
            params,
        )
    }
    principals = queries.query_principals(any_cache, event_filter)
    found = {
        row["principal"]: (row["events"], iso(row["first_seen"]), iso(row["last_seen"]))
        for row in principals.iter_rows(named=True)
    }
    assert found == expected


def test_principal_list_offers_everyone_active(any_cache):
    principals = queries.query_principals(any_cache, EventFilter())
    everyone = with_role_grain(any_cache).execute(f"SELECT DISTINCT {ROLE_GRAIN} FROM events")
    assert set(principals["principal"]) == {r[0] for r in everyone}


def test_resource_history_is_every_mention_oldest_first(small_cache):
    history = queries.query_resource_history(small_cache, EventFilter(), "i-0abc")
    expected = sql_ids(
        small_cache,
        "instr(request_parameters, 'i-0abc') OR instr(response_elements, 'i-0abc') OR instr(resources, 'i-0abc')",
    )
    assert set(history["event_id"]) == expected
    assert history["event_name"].to_list() == ["RunInstances", "StopInstances", "AssociateAddress", "TerminateInstances"]
    assert history["event_time"].is_sorted()


def test_filter_options_and_cache_summary_agree_with_sql(small_cache):
    options = queries.query_filter_options(small_cache)
    assert options.accounts == ACCOUNTS and options.regions == REGIONS
    summary = queries.query_cache_summary(small_cache)
    assert summary["events"] == sql_count(small_cache, EventFilter())
    assert (summary["first_event"], summary["last_event"]) == tuple(small_cache.execute(
        "SELECT min(event_time), max(event_time) FROM events"
    ).fetchone())
    assert summary["failed_files"] == 1 and summary["files"] == small_cache.execute("SELECT count(*) FROM files").fetchone()[0]
    assert "failed" in summary["last_sync"]


def test_search_suggestions_come_from_the_cache(small_cache):
    assert queries.query_event_names(small_cache) == sorted(
        r[0] for r in small_cache.execute("SELECT DISTINCT event_name FROM events")
    )
    assert queries.query_error_codes(small_cache) == ["AccessDenied", "DependencyViolation", "LimitExceeded"]


def test_sync_history_lists_runs_files_and_failures(small_cache):
    runs = bookkeeping.query_sync_runs(small_cache)
    assert runs.row(0, named=True)["status"] == "failed" and runs["failures"].to_list() == [1]
    failed = bookkeeping.query_files(small_cache, statuses=("failed",))
    assert failed["key"].to_list() == ["broken.json.gz"] and failed["error"].to_list() == ["corrupt gzip data"]
    assert bookkeeping.query_files(small_cache, limit=None).height == small_cache.execute("SELECT count(*) FROM files").fetchone()[0]
    delivered = bookkeeping.query_delivery_health(small_cache)
    assert delivered["records"].sum() == sql_count(small_cache, EventFilter())
    assert bookkeeping.query_rejected_records(small_cache).height == 0


def test_unknown_timeline_grouping_is_refused_with_the_choices(small_cache):
    with pytest.raises(ValueError, match="event_source"):
        queries.query_event_timeline(small_cache, EventFilter(), "request_parameters; DROP TABLE events")


def test_every_page_query_runs_on_the_real_corpus(corpus_cache):
    everything = EventFilter()
    assert queries.query_overview_totals(corpus_cache, everything)["events"].item() == sql_count(corpus_cache, everything)
    for group_by in queries.TIMELINE_GROUPS:
        assert queries.query_event_timeline(corpus_cache, everything, group_by)["events"].sum() == sql_count(
            corpus_cache, everything
        )
    for use_case in catalog.USE_CASES:
        queries.query_use_case_events(corpus_cache, everything, use_case)
        queries.query_use_case_timeline(corpus_cache, everything, use_case)
    queries.query_top_event_names(corpus_cache, everything)
    queries.query_account_region_counts(corpus_cache, everything)
    assert queries.query_error_counts(corpus_cache, everything)["events"].sum() == sql_count(
        corpus_cache, everything, "error_code IS NOT NULL AND error_code != ''"
    )
    queries.query_search(corpus_cache, everything, SearchQuery(text="AdministratorAccess", resource_type="AWS::S3::Bucket"))
    for principal in queries.query_principals(corpus_cache, everything)["principal"].drop_nulls():
        queries.query_principal_activity(corpus_cache, everything, principal)
    queries.query_resource_history(corpus_cache, everything, "sg-003dc7f1f1c686164")
    queries.query_cache_summary(corpus_cache)
    bookkeeping.query_delivery_health(corpus_cache)
