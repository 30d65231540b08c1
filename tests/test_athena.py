"""The Athena client on moto's server: start, poll through queued and running, paginated results, the local result
cache, cancellation and time-outs as sentences; results queued through moto's own set_athena_result endpoint.

botocore speaks Athena as rest-json, moto 5.2 only as JSON 1.1: a small server on 127.0.0.1 takes the rest-json
requests (routes read from botocore's own service model), hands each operation to moto, and pages GetQueryResults
by MaxResults/NextToken as Athena does (moto returns every row at once). moto cannot fail a query: a reason queued
on the front (`_fail_next_query`) makes the next started query report FAILED with it, as Athena's
GetQueryExecution does (Status.State, Status.StateChangeReason, Status.AthenaError)."""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
import polars as pl
import pytest

from trailstream.analytics import backend
from trailstream.config import BackendSettings
from trailstream.filters import EventFilter
from trailstream.ingest import athena
from trailstream.ingest import aws as aws_io

PAGE_ROWS = 1000  # Athena's default and largest GetQueryResults page
FAILURES: dict = {"next": [], "by_execution": {}}  # reasons waiting for a query, and given to one


def _routes() -> list[tuple[str, re.Pattern, object]]:
    """(method, path pattern, operation model) for every Athena operation, from botocore's service model."""
    model = botocore.session.get_session().get_service_model("athena")
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        uri = operation.http["requestUri"].split("?")[0]
        pattern = re.escape(uri).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", pattern)
        routes.append((operation.http["method"], re.compile(f"^{pattern}$"), operation))
    return routes


def _input(operation, match: re.Match, query: dict, body: bytes) -> dict:
    params = json.loads(body or b"{}")
    params |= {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
    for member, shape in operation.input_shape.members.items():
        where = shape.serialization
        if where.get("location") == "querystring" and where["name"] in query:
            value = query[where["name"]][0]
            params[member] = int(value) if shape.type_name == "integer" else value
    return params


def _paged(result: dict, params: dict) -> dict:
    rows = result["ResultSet"].get("Rows", [])
    start, size = int(params.get("NextToken") or 0), int(params.get("MaxResults") or PAGE_ROWS)
    result["ResultSet"]["Rows"] = rows[start:start + size]
    if start + size < len(rows):
        result["NextToken"] = str(start + size)
    return result


def _rest_json_handler(moto: str, routes):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _serve(self):
            url = urllib.parse.urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            for method, pattern, operation in routes:
                match = pattern.match(url.path)
                if method == self.command and match:
                    break
            else:
                return self._reply(404, {"__type": "UnknownOperationException", "message": url.path})
            params = _input(operation, match, urllib.parse.parse_qs(url.query), body)
            forwarded = {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")
                         or operation.name != "GetQueryResults"}
            request = urllib.request.Request(moto + "/", data=json.dumps(forwarded).encode(), method="POST", headers={
                "X-Amz-Target": f"AmazonAthena.{operation.name}", "Content-Type": "application/x-amz-json-1.1",
                "Authorization": self.headers.get("Authorization", "")})
            try:
                with urllib.request.urlopen(request) as response:
                    status, result = response.status, json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                status, result = exc.code, json.loads(exc.read() or b"{}")
            if status == 200 and operation.name == "GetQueryResults":
                result = _paged(result, params)
            if status == 200 and operation.name == "StartQueryExecution" and FAILURES["next"]:
                FAILURES["by_execution"][result["QueryExecutionId"]] = FAILURES["next"].pop(0)
            reason = FAILURES["by_execution"].get(params.get("QueryExecutionId"))
            if status == 200 and operation.name == "GetQueryExecution" and reason:
                result["QueryExecution"]["Status"] = {"State": "FAILED", "StateChangeReason": reason,
                                                      "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006}}
            self._reply(status, result)

        def _reply(self, status: int, result: dict):
            data = json.dumps(result).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status >= 400:
                self.send_header("x-amzn-errortype", result.get("__type", "UnknownError"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

    return Handler


@pytest.fixture(scope="module")
def athena_endpoint(moto_endpoint):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _rest_json_handler(moto_endpoint, _routes()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def aws(aws, athena_endpoint, monkeypatch):
    """moto's server for every service, Athena through the rest-json front."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", athena_endpoint)
    yield aws
    _post(aws, "/moto-api/state-manager/unset-transition", {"model_name": "athena::execution"})  # outlives a reset
    FAILURES["next"].clear()
    FAILURES["by_execution"].clear()


SETTINGS = BackendSettings(kind="athena", region="us-east-1", output_location="s3://results/athena/")


def _post(endpoint: str, path: str, body: dict) -> None:
    request = urllib.request.Request(f"{endpoint}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()


def _athena_backend(cache_dir=None) -> tuple[backend.LakeBackend, athena.AthenaRunner]:
    runner = athena.AthenaRunner(SETTINGS, cache_dir)
    return backend.LakeBackend(backend.athena_table(SETTINGS), "athena", runner.frame), runner


def _queue_result(endpoint: str, columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    """One result for the next query, as Athena returns a SELECT's: a header row first, every cell as text."""
    cells = [[name for name, _ in columns], *rows]
    _post(endpoint, "/moto-api/static/athena/query-results", {"results": [{
        "rows": [{"Data": [{} if value is None else {"VarCharValue": value} for value in row]} for row in cells],
        "column_info": [{"Name": name, "Type": kind} for name, kind in columns],
    }]})


def _fail_next_query(reason: str) -> None:
    """The next query Athena starts ends FAILED with this reason (a user error such as a syntax error: category 2)."""
    FAILURES["next"].append(reason)


def _slow_queries(endpoint: str, polls: int) -> None:
    """Each query stays queued, then running, for `polls` state reads before it moves on."""
    _post(endpoint, "/moto-api/state-manager/set-transition",
          {"model_name": "athena::execution", "transition": {"progression": "manual", "times": polls}})


SERVICES = [("event_source", "varchar"), ("events", "bigint"), ("failed", "bigint")]


def test_a_page_query_runs_on_athena_after_polling_and_comes_back_typed(aws, tmp_path):
    _slow_queries(aws, 2)
    _queue_result(aws, SERVICES, [["s3.amazonaws.com", "40", "3"], ["iam.amazonaws.com", "7", None]])
    lake, runner = _athena_backend(tmp_path)
    pauses = []
    runner.pause = pauses.append
    frame = lake.query("top_services", EventFilter(start="2026-03-01T00:00:00Z"), limit=5)
    assert frame.to_dicts() == [{"event_source": "s3.amazonaws.com", "events": 40, "failed": 3},
                                {"event_source": "iam.amazonaws.com", "events": 7, "failed": None}]
    assert frame.schema["events"] == pl.Int64 and len(pauses) >= 2  # queued, then running, before succeeded
    assert runner.cost_note().startswith("scanned 0.00 GB")


def test_the_same_query_and_period_is_answered_from_the_local_result_cache(aws, tmp_path):
    _queue_result(aws, SERVICES, [["s3.amazonaws.com", "40", "3"]])
    _queue_result(aws, SERVICES, [])
    period = EventFilter(start="2026-03-01T00:00:00Z")
    first, _ = _athena_backend(tmp_path)
    again, runner = _athena_backend(tmp_path)
    assert first.query("top_services", period).height == 1
    assert again.query("top_services", period).height == 1  # not the empty result queued next: from the cache
    assert runner.scanned_bytes == 0
    other_period = again.query("top_services", EventFilter(start="2026-02-01T00:00:00Z"))
    assert other_period.height == 0  # a new period is a new query: it took the empty result


def test_a_cancelled_query_says_so_in_a_sentence(aws):
    _slow_queries(aws, 50)
    runner = athena.AthenaRunner(SETTINGS)

    def cancel_while_waiting(_seconds):
        execution = runner.client.list_query_executions()["QueryExecutionIds"][0]
        runner.client.stop_query_execution(QueryExecutionId=execution)

    runner.pause = cancel_while_waiting
    with pytest.raises(aws_io.SourceError, match="was cancelled"):
        runner.run("SELECT 1")


def test_a_failed_query_says_athenas_reason_in_a_sentence_and_keeps_no_result(aws, tmp_path):
    reason = "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"
    _fail_next_query(reason)
    _slow_queries(aws, 1)
    runner = athena.AthenaRunner(SETTINGS, tmp_path, pause=lambda _seconds: None)
    with pytest.raises(aws_io.SourceError) as failed:
        runner.run("SELECT nope")
    assert str(failed.value) == f"Athena could not run the query: {reason}"
    assert not list(tmp_path.iterdir())  # a failure is never kept as an answer: the same statement runs again
    _queue_result(aws, [("one", "integer")], [["1"]])
    assert runner.frame("SELECT nope")["one"].to_list() == [1]


def test_a_query_still_queued_at_the_time_limit_says_what_to_do(aws):
    _slow_queries(aws, 1000)
    runner = athena.AthenaRunner(SETTINGS, timeout=10, pause=lambda _seconds: None)
    with pytest.raises(aws_io.SourceError, match=r"still (queued|running) after 10 s: try a shorter period"):
        runner.run("SELECT 1")


def test_athena_ddl_apply_runs_every_statement(aws, tmp_path, corpus, capsys):
    from trailstream import cli
    from trailstream.ingest import lake

    lake.compact_paths(tmp_path / "lake", [corpus / "events"])
    config = tmp_path / "trailstream.toml"
    config.write_text(f'[backend]\nkind = "athena"\nlake = "{tmp_path / "lake"}"\nregion = "us-east-1"\n'
                      'output_location = "s3://results/athena/"\n')
    assert cli.main(["--config", str(config), "athena-ddl", "--apply"]) == 0
    assert "applied 2 statement(s)" in capsys.readouterr().err
    client = athena.AthenaRunner(SETTINGS).client
    assert len(client.list_query_executions()["QueryExecutionIds"]) == 2


def test_results_longer_than_a_page_are_read_to_the_last_page(aws):
    rows = [[f"event{n:04d}", str(n)] for n in range(2500)]
    _queue_result(aws, [("event_name", "varchar"), ("events", "bigint")], rows)
    frame = athena.AthenaRunner(SETTINGS).frame("SELECT event_name, count(*) AS events FROM events GROUP BY 1")
    assert frame.height == 2500 and frame["events"].sum() == sum(range(2500))


@pytest.mark.parametrize("toml, problem", [
    ('kind = "bigquery"', 'kind "bigquery" is not cache or athena'),
    ('output_location = "results/"', 'output_location "results/" should be an s3://BUCKET/PREFIX location'),
    ('role_arn = "admin"', 'role ARN "admin" should look like arn:aws:iam::123456789012:role/Name'),
])
def test_backend_settings_with_a_problem_stop_athena_ddl_with_a_sentence(tmp_path, capsys, toml, problem):
    from trailstream import cli

    config = tmp_path / "trailstream.toml"
    config.write_text(f'[backend]\nlake = "{tmp_path}"\n{toml}\n')
    assert cli.main(["--config", str(config), "athena-ddl"]) == 2
    assert problem in capsys.readouterr().err


def test_backend_settings_read_the_access_keys_sources_use(tmp_path):
    from trailstream import config

    path = tmp_path / "trailstream.toml"
    path.write_text('[backend]\nkind = "athena"\nworkgroup = "wg"\nregion = "eu-west-1"\nprofile = "p"\nunknown = 1\n')
    settings = BackendSettings.from_section(config.load_settings(path).section("backend"))
    assert (settings.kind, settings.workgroup, settings.table) == ("athena", "wg", "events")
    assert (settings.access.region, settings.access.profile) == ("eu-west-1", "p") and not settings.problems()


@pytest.mark.skipif(not os.environ.get("TRAILSTREAM_ATHENA_WORKGROUP"),
                    reason="opt-in: set TRAILSTREAM_ATHENA_WORKGROUP, TRAILSTREAM_ATHENA_OUTPUT and AWS credentials")
def test_a_real_athena_workgroup_answers_a_query():
    settings = BackendSettings(kind="athena", workgroup=os.environ["TRAILSTREAM_ATHENA_WORKGROUP"],
                               database=os.environ.get("TRAILSTREAM_ATHENA_DATABASE", "default"),
                               output_location=os.environ.get("TRAILSTREAM_ATHENA_OUTPUT", ""),
                               region=os.environ.get("AWS_REGION", ""))
    result = athena.AthenaRunner(settings).run("SELECT 1 AS one, 'a' AS letter")
    assert result.frame().to_dicts() == [{"one": 1, "letter": "a"}]


# --- The app on Athena: a page end to end, and the Sources & settings test -------------------------

EVENT_TYPES = {"read_only": "boolean"}


def _athena_settings(tmp_path, **values) -> None:
    lines = "".join(f'{key} = "{value}"\n' for key, value in
                    ({"kind": "athena", "region": "us-east-1", "output_location": "s3://results/athena/"} | values).items())
    (tmp_path / "trailstream.toml").write_text(f"[backend]\n{lines}")


def _queue_events(endpoint: str, rows: list[dict]) -> None:
    """The rows of a lake events query as Athena would return them (every column, as text)."""
    from trailstream.analytics.queries import EVENT_SCHEMA

    columns = [(name, EVENT_TYPES.get(name, "varchar")) for name in EVENT_SCHEMA]
    _queue_result(endpoint, columns, [[row.get(name) for name in EVENT_SCHEMA] for row in rows])


HOSTILE = "[click](https://evil.example) =HYPERLINK(\"x\")"
LAKE_ROWS = [
    {"event_id": "e2", "event_time": "2026-03-01T12:00:00Z", "event_name": "PutObject", "principal": HOSTILE,
     "event_source": "s3.amazonaws.com", "read_only": "false", "error_code": HOSTILE},
    {"event_id": "e1", "event_time": "2026-03-01T11:00:00Z", "event_name": "GetObject", "principal": "ann",
     "event_source": "s3.amazonaws.com", "read_only": "true"},
]


CLOSED_PERIOD = {"from": "2026-02-01", "to": "2026-03-01"}  # an open period's statements change every 5 minutes


def _open_on_athena(tmp_path, page: str, **settings):
    """The app first on the cache (its home page would take the queued result), then `page` on Athena."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP, APP_TIMEOUT

    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT)
    at.query_params.update(range="custom", **CLOSED_PERIOD)
    at.run()
    _athena_settings(tmp_path, **settings)
    at.switch_page(page).run()
    assert not at.exception, [exception.value for exception in at.exception]
    return at


def test_search_on_athena_shows_the_lakes_events_the_cost_note_and_reuses_the_result(aws, app_demo_cache, tmp_path):
    _queue_result(aws, [("account_id", "varchar"), ("aws_region", "varchar")], [["444455556666", "sa-east-1"]])
    _queue_result(aws, [("event_name", "varchar"), ("error_code", "varchar")], [["PutObject", HOSTILE],
                                                                                 ["GetObject", None]])
    _queue_events(aws, LAKE_ROWS)  # the sidebar's choices are asked first, then the form's suggestions, the events
    at = _open_on_athena(tmp_path, "pages/search.py")
    assert at.multiselect(key="account").options == ["444455556666"]  # the lake's accounts, not the cache's
    assert at.selectbox(key="event").options == ["GetObject", "PutObject"]  # the lake's names, not the cache's
    assert at.selectbox(key="error").options == [HOSTILE]
    [recent] = [frame.value for frame in at.dataframe if frame.key == "recent-events"]
    assert recent["principal"].tolist() == [HOSTILE, "ann"] and recent["error_code"].tolist()[0] == HOSTILE
    [note] = [text.value for text in at.text if text.value.startswith("Athena workgroup primary")]
    assert "this page scanned 0.00 GB, ≈ $0.0000; the workgroup sets no per-query scan limit" in note
    assert not any("evil.example" in str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.error))
    # The next query Athena answers is the selected row's lineage (the events are not asked again): a file not here.
    _queue_result(aws, [("source_key", "varchar"), ("source_sha256", "varchar")], [["/nowhere/e2.json.gz", "0" * 64]])
    at.session_state["recent-events"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert [frame.value.shape[0] for frame in at.dataframe if frame.key == "recent-events"] == [2]
    assert [warning.value for warning in at.warning] == [  # e2 is on the lake only, its file elsewhere: says why
        "The lake keeps this event's columns (in the table above), not its original record, the local cache holds "
        "no copy of it, and its source file cannot be shown:"]
    assert any("/nowhere/e2.json.gz is not on this machine" in text.value for text in at.text)
    assert len(athena.AthenaRunner(SETTINGS).client.list_query_executions()["QueryExecutionIds"]) == 4


def test_an_athena_answer_without_the_lakes_columns_is_a_sentence(aws, app_demo_cache, tmp_path):
    _queue_result(aws, [("one", "integer")], [["1"]])
    at = _open_on_athena(tmp_path, "pages/search.py")
    assert any("does not have the columns the compactor writes" in text.value for text in at.text)


@pytest.mark.parametrize("environment, said", [
    ({"workgroup": "nope"}, "Athena workgroup nope was not found: check [backend] workgroup and region"),
    ({"no_credentials": True}, "no AWS credentials found"),
])
def test_athena_that_cannot_answer_is_a_sentence_on_the_page(aws, app_demo_cache, tmp_path, monkeypatch,
                                                             environment, said):
    from tests.conftest import open_page

    _athena_settings(tmp_path, **{k: v for k, v in environment.items() if k != "no_credentials"})
    if environment.get("no_credentials"):
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    at = open_page("pages/overview.py", range="all")
    assert [error.value for error in at.error] == ["The lake could not answer this page's queries; what went wrong, "
                                                   "and what to do:"]
    assert any(said in text.value for text in at.text), [text.value for text in at.text]
    assert not at.metric  # nothing from the cache shown as if it were the lake


def test_a_failed_athena_query_is_athenas_reason_on_the_page(aws, app_demo_cache, tmp_path):
    from tests.conftest import open_page

    _athena_settings(tmp_path)
    for _query in range(3):  # the sidebar's account and region choices are asked first, then the page's totals
        _fail_next_query("TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.trailstream.events' does not exist")
    at = open_page("pages/overview.py", range="all")
    assert [error.value for error in at.error] == ["The lake could not answer this page's queries; what went wrong, "
                                                   "and what to do:"]
    assert any("Athena could not run the query: TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.trailstream.events' "
               "does not exist" in text.value for text in at.text), [text.value for text in at.text]
    assert not at.metric


@pytest.mark.parametrize("workgroup, verdict, said", [
    ("primary", "Connection OK", "Athena workgroup primary ran a test query; the workgroup sets no per-query scan"),
    ("nope", "Connection failed", "Athena workgroup nope was not found"),
])
def test_sources_and_settings_shows_the_live_backend_and_tests_it(aws, app_demo_cache, tmp_path, workgroup, verdict,
                                                                   said):
    from tests.conftest import open_page

    _athena_settings(tmp_path, workgroup=workgroup)
    at = open_page("pages/sources.py")
    assert any(f"Overview and Search read Athena: workgroup {workgroup}, table trailstream.events" in text.value
               for text in at.text)
    at.button(key="test-backend").click().run()
    assert [element.value for element in (*at.success, *at.error)] == [verdict]
    assert any(said in text.value for text in at.text), [text.value for text in at.text]
