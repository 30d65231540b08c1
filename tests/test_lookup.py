"""Event history (LookupEvents) read into the cache, against a CloudTrail JSON 1.1 server on 127.0.0.1.

moto has no LookupEvents, so `history` below is a small HTTP server speaking that one operation; every request it
receives and every response it sends is checked against botocore's own service model. STS and EC2 come from moto.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.loaders
import botocore.model
import pytest

from trailstream import cli
from trailstream.cache import watermarks
from trailstream.config import AwsAccess
from trailstream.ingest import lookup

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
MODEL = botocore.model.ServiceModel(botocore.loaders.Loader().load_service_model("cloudtrail", "service-2"))
OPERATION = MODEL.operation_model("LookupEvents")
TARGET = f"{MODEL.metadata['targetPrefix']}.LookupEvents"


def check_shape(shape: botocore.model.Shape, value, where: str = "") -> None:
    """Fail the test when a value does not have the wire form the service model gives this shape."""
    if shape.type_name == "structure":
        assert isinstance(value, dict), where
        for key, item in value.items():
            assert key in shape.members, f"{where}.{key} is not in {shape.name}"
            check_shape(shape.members[key], item, f"{where}.{key}")
    elif shape.type_name == "list":
        assert isinstance(value, list), where
        for item in value:
            check_shape(shape.member, item, where + "[]")
    elif shape.type_name == "timestamp":
        assert isinstance(value, (int, float)), f"{where}: JSON timestamps are epoch seconds"
    elif shape.type_name == "integer":
        assert isinstance(value, int), where
        assert shape.metadata.get("min", value) <= value <= shape.metadata.get("max", value), where
    elif shape.type_name == "string":
        assert isinstance(value, str), where
        assert not shape.enum or value in shape.enum, where
    elif shape.type_name == "boolean":
        assert isinstance(value, bool), where


def record(number: int, moment: datetime, region: str, category: str = "management") -> dict:
    base = {"eventVersion": "1.09", "eventID": f"{region}-{category}-{number:05d}",
            "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "awsRegion": region, "recipientAccountId": "123456789012"}
    if category == "insight":
        return base | {"eventType": "AwsCloudTrailInsight", "eventCategory": "Insight", "eventName": "DeleteTags",
                       "eventSource": "ec2.amazonaws.com", "insightDetails": {"state": "Start"}}
    return base | {"eventType": "AwsApiCall", "eventCategory": "Management", "eventSource": "ec2.amazonaws.com",
                   "eventName": "DescribeInstances", "readOnly": True,
                   "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "123456789012",
                                    "arn": "arn:aws:iam::123456789012:user/alice"}}


class EventHistory(ThreadingHTTPServer):
    """Event history per region (newest first), paging by NextToken; can throttle or expire credentials on cue."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.events: dict[tuple[str, str], list[dict]] = {}
        self.requests: list[dict] = []
        self.throttle = 0  # answer this many next requests with ThrottlingException
        self.fail_at: int | None = None  # from this request number on, answer ExpiredTokenException
        self.lock = threading.Lock()

    def add(self, records: list[dict]) -> None:
        for item in records:
            key = (item["awsRegion"], "insight" if item["eventCategory"] == "Insight" else "management")
            self.events.setdefault(key, []).append(item)
        for items in self.events.values():
            items.sort(key=lambda item: item["eventTime"], reverse=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, region: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests.append({"region": region, "arrived": time.monotonic(), **body})
            if self.throttle:
                self.throttle -= 1
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            if self.fail_at is not None and len(self.requests) >= self.fail_at:
                return 400, {"__type": "ExpiredTokenException", "message": "The security token included in the "
                                                                           "request is expired"}
        start = datetime.fromtimestamp(body["StartTime"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = datetime.fromtimestamp(body["EndTime"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        matching = [item for item in self.events.get((region, body.get("EventCategory", "management")), [])
                    if start <= item["eventTime"] <= end]
        offset = int(body.get("NextToken", "0"))
        page = matching[offset: offset + body.get("MaxResults", 50)]
        response = {"Events": [_entry(item) for item in page]}
        if offset + len(page) < len(matching):
            response["NextToken"] = str(offset + len(page))
        return 200, response


def _entry(item: dict) -> dict:
    moment = datetime.strptime(item["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return {"EventId": item["eventID"], "EventName": item["eventName"], "ReadOnly": "true",
            "EventTime": moment.timestamp(), "EventSource": item["eventSource"], "Username": "alice",
            "Resources": [], "CloudTrailEvent": json.dumps(item)}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        assert self.headers["X-Amz-Target"] == TARGET
        assert self.headers["Content-Type"] == "application/x-amz-json-1.1"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        check_shape(OPERATION.input_shape, body, "request")
        region = self.headers["Authorization"].split("Credential=")[1].split("/")[2]
        status, response = self.server.answer(region, body)
        if status == 200:
            check_shape(OPERATION.output_shape, response, "response")
        payload = json.dumps(response).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def history(aws, monkeypatch):
    """Event history on loopback for CloudTrail; STS and EC2 (regions, account) from the moto server."""
    server = EventHistory()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", server.url)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def busy_history(history):
    """130 management events over three days in us-east-1, 7 in eu-west-1, one Insights event."""
    history.add([record(n, NOW - timedelta(minutes=33 * n + 5), "us-east-1") for n in range(130)])
    history.add([record(n, NOW - timedelta(hours=n + 1), "eu-west-1") for n in range(7)])
    history.add([record(0, NOW - timedelta(days=2), "us-east-1", "insight")])
    return history


def stored_ids(db_path) -> set[str]:
    with sqlite3.connect(db_path) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


def read(db_path, regions=("us-east-1", "eu-west-1"), **options):
    return lookup.lookup_events(db_path, AwsAccess(region="us-east-1"), list(regions), now=options.pop("now", NOW),
                                requests_per_second=options.pop("requests_per_second", 100), **options)


def test_every_event_of_each_region_is_stored_through_paging_with_insights(busy_history, db_path):
    result = read(db_path)
    assert result.succeeded, result.failures
    assert result.new_events == 138
    assert len(stored_ids(db_path)) == 138
    assert "us-east-1-insight-00000" in stored_ids(db_path)
    pages = [r for r in busy_history.requests if r["region"] == "us-east-1" and "EventCategory" not in r]
    assert len(pages) == 3 and all(r["MaxResults"] == 50 for r in pages)
    assert [("NextToken" in r) for r in pages] == [False, True, True]


def test_a_second_lookup_reads_only_what_is_newer_and_stores_nothing_twice(busy_history, db_path):
    read(db_path)
    busy_history.requests.clear()
    busy_history.add([record(999, NOW + timedelta(minutes=30), "us-east-1")])
    result = read(db_path, now=NOW + timedelta(hours=1))
    assert result.succeeded, result.failures
    assert result.new_events == 1
    first = next(r for r in busy_history.requests if r["region"] == "us-east-1" and "EventCategory" not in r)
    assert first["StartTime"] >= (NOW - lookup.LATE_ARRIVAL).timestamp()


def test_throttling_is_backed_off_and_the_lookup_completes(busy_history, db_path):
    busy_history.throttle = 2
    result = read(db_path, regions=["eu-west-1"])
    assert result.succeeded, result.failures
    assert result.new_events == 7
    assert len(busy_history.requests) == 2 + 2  # two throttled, then the management and the insight page


def test_requests_are_paced_to_two_a_second_per_region(busy_history, db_path):
    read(db_path, regions=["us-east-1"], requests_per_second=2)
    arrivals = [r["arrived"] for r in busy_history.requests]
    assert len(arrivals) == 4  # three management pages and one insight page
    assert arrivals[2] - arrivals[0] >= 0.9 and arrivals[3] - arrivals[1] >= 0.9


def test_expired_credentials_mid_way_stop_with_a_sentence_and_the_next_run_resumes(busy_history, db_path):
    busy_history.fail_at = 3  # the third request: after two pages of us-east-1 were stored
    first = read(db_path, regions=["us-east-1"])
    assert not first.succeeded
    assert "credentials expired" in first.failures[0][1] and "resumes" in first.failures[0][1]
    assert len(stored_ids(db_path)) == 100
    with sqlite3.connect(db_path) as conn:
        mark = watermarks.query_watermark(conn, "123456789012", "us-east-1", "management")
    assert mark.gap_from is not None
    busy_history.fail_at = None
    busy_history.requests.clear()
    second = read(db_path, regions=["us-east-1"])
    assert second.succeeded, second.failures
    assert len(stored_ids(db_path)) == 131
    resumed = busy_history.requests[0]
    assert resumed["EndTime"] <= datetime.strptime(mark.gap_to, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()


def test_an_interrupted_lookup_keeps_its_pages_and_resumes(busy_history, db_path):
    def interrupt(progress):
        if progress.new_events >= 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        read(db_path, regions=["us-east-1"], progress=interrupt)
    assert len(stored_ids(db_path)) == 50
    result = read(db_path, regions=["us-east-1"])
    assert result.succeeded and len(stored_ids(db_path)) == 131


def test_a_region_not_enabled_is_a_sentence_and_the_others_are_read(busy_history, db_path):
    result = read(db_path, regions=["eu-west-1", "xx-nowhere-9"])
    assert result.new_events == 7
    assert result.failures == [("Event history in xx-nowhere-9",
                                '"xx-nowhere-9" is not an AWS region this account knows; check the spelling (e.g. eu-west-1)')]


def test_every_enabled_region_is_read_by_default(busy_history, db_path):
    result = lookup.lookup_events(db_path, AwsAccess(region="us-east-1"), now=NOW, requests_per_second=100)
    assert result.succeeded, result.failures
    assert result.new_events == 138
    assert len({r["region"] for r in busy_history.requests}) > 10


def test_the_cli_lookup_reads_event_history(history, db_path, capsys):
    now = datetime.now(timezone.utc)
    history.add([record(n, now - timedelta(days=n + 1), "eu-west-1") for n in range(3)])
    code = cli.main(["--db", str(db_path), "--quiet", "--no-alerts", "lookup", "--region", "eu-west-1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "3 new event(s)" in out.out
    assert len(stored_ids(db_path)) == 3


def test_a_lookup_source_in_the_settings_is_synced_by_the_configured_sync(history, db_path, tmp_path):
    from trailstream import config, jobs

    now = datetime.now(timezone.utc)
    history.add([record(n, now - timedelta(days=n + 1), "eu-west-1") for n in range(3)])
    path = tmp_path / "trailstream.toml"
    path.write_text('[[sources]]\nname = "history"\nkind = "lookup"\nregions = ["eu-west-1"]\nregion = "us-east-1"\n')
    settings = config.load_settings(path)
    assert settings.errors == [] and settings.sources[0].describe() == "Event history (LookupEvents) in eu-west-1"
    [result] = jobs.run_configured_sync(settings, db_path)
    assert result.source == "history" and result.succeeded, result.failures
    assert len(stored_ids(db_path)) == 3


@pytest.mark.parametrize("line, problem", [
    ('regions = ["eu-west"]', 'region "eu-west" in "regions" does not look like an AWS region'),
    ('since = "last week"', '"since" = "last week" is not a date; write it as YYYY-MM-DD'),
])
def test_a_lookup_source_with_bad_values_is_refused_with_a_sentence(tmp_path, line, problem):
    from trailstream import config

    path = tmp_path / "trailstream.toml"
    path.write_text(f'[[sources]]\nname = "history"\nkind = "lookup"\n{line}\n')
    assert any(problem in error for error in config.load_settings(path).errors)


def test_an_opt_in_region_not_enabled_is_a_sentence(busy_history, db_path):
    result = read(db_path, regions=["ap-east-1"])
    assert result.failures == [("Event history in ap-east-1", "region ap-east-1 is not enabled for this account: "
                                "enable it under Account settings in the AWS console, or leave it out")]
    assert busy_history.requests == []


def test_the_first_run_offers_event_history_and_one_click_reads_it(app_demo_cache, history):
    from tests.conftest import open_page
    from trailstream import config

    now = datetime.now(timezone.utc)
    history.add([record(n, now - timedelta(days=n + 1), "eu-west-1") for n in range(3)])
    at = open_page("pages/overview.py", range="all")
    assert any("No trail?" in caption.value for caption in at.sidebar.caption)
    at.button(key="event-history-offer").click().run()
    assert not at.exception, [exception.value for exception in at.exception]
    assert [source.kind for source in config.load_settings().sources] == ["lookup"]
    assert stored_ids(app_demo_cache) == {f"eu-west-1-management-{n:05d}" for n in range(3)}  # the demo is gone
    at.run()
    assert not any("No trail?" in caption.value for caption in at.sidebar.caption)


def test_sources_and_settings_adds_an_event_history_source(app_empty_cache):
    from tests.conftest import open_page
    from trailstream import config

    at = open_page("pages/sources.py")
    at.session_state["new-kind"] = "lookup"
    at.run()
    at.text_input(key="new-lookup-name").set_value("history")
    at.text_input(key="new-lookup-regions").set_value("eu-west-1, us-east-1")
    next(button for button in at.button if button.label == "Save source").click().run()
    assert not at.exception, [exception.value for exception in at.exception]
    [source] = config.load_settings().sources
    assert (source.kind, source.name, source.regions) == ("lookup", "history", ["eu-west-1", "us-east-1"])


def test_test_connection_of_an_event_history_source_checks_the_credentials(aws, app_empty_cache):
    from tests.conftest import open_page
    from trailstream import config

    settings = config.load_settings()
    settings.sources = [config.LookupSource(name="history", region="us-east-1")]
    config.save_settings(settings)
    at = open_page("pages/sources.py")
    at.button(key="test-history").click().run()
    assert not at.exception, [exception.value for exception in at.exception]
    assert any("Connection OK" in success.value for success in at.success)


def test_lookups_share_one_pacer_instead_of_a_thread_per_region(busy_history, db_path):
    def leak_threads() -> int:
        return sum("Leaker" in thread.name for thread in threading.enumerate())

    read(db_path)
    before = leak_threads()
    read(db_path, regions=["us-east-1", "eu-west-1", "eu-central-1"])
    assert leak_threads() == before  # one per rate for the whole process, however many regions


def test_no_credentials_is_a_sentence_not_a_traceback(db_path, tmp_path, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = cli.main(["--db", str(db_path), "--quiet", "lookup", "--region", "eu-west-1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no AWS credentials found" in err and "Traceback" not in err
