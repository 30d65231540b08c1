"""One fuzz harness per entry point that takes outside bytes, with the errors it is documented to raise.

Each harness takes bytes and either returns or raises one of its `expected` errors; anything else is a crash.
`fuzz/run.py` drives them with atheris; `tests/test_fuzz_regressions.py` replays their seeds and every input that
ever failed (tests/data/fuzz/<harness>/).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TRAILSTREAM_CORPUS", ROOT.parent / "shared" / "corpus"))
REGRESSIONS = ROOT / "tests" / "data" / "fuzz"


@dataclass(frozen=True)
class Harness:
    """An entry point under fuzzing: how to feed it bytes, what it may raise, where its seeds come from."""

    name: str
    target: Callable[[bytes], object]
    expected: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")  # text from a page or a URL is always valid Unicode


def _files(*folders: str) -> list[bytes]:
    return [path.read_bytes() for folder in folders for path in sorted((CORPUS / folder).glob("*"))
            if path.is_file()] if CORPUS.exists() else []


# --- log files and messages ----------------------------------------------------------------------------------------


def parse_log_file(data: bytes) -> None:
    from trailstream.cache import codec
    from trailstream.ingest import records

    records.parse_log_file(data, codec.default_compressor(), max_bytes=16 << 20)


def parse_message(data: bytes) -> None:
    from trailstream.ingest import messages

    messages.parse_message_body(_text(data))


# --- settings, filters, search, SQL, alert rules --------------------------------------------------------------------


def load_settings(data: bytes) -> None:
    """The settings file never raises: every problem must come back as a sentence in `errors`."""
    from trailstream import config

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trailstream.toml"
        path.write_bytes(data)
        settings = config.load_settings(path)
        if not settings.errors:
            for name in ("detections", "smtp", "alerts"):
                settings.section(name)


@lru_cache(maxsize=1)
def _small_cache() -> str:
    """A small demo cache, built once per process, that the query harnesses read."""
    from trailstream.ingest import sync

    path = Path(tempfile.mkdtemp(prefix="trailstream-fuzz-")) / "fuzz.db"
    sync.import_demo(path, 400, seed=1, workers=1)
    return str(path)


def _fields(data: bytes) -> list[str]:
    """Split fuzz bytes into text fields, the way a URL's query parameters arrive."""
    return _text(data).split("\x00")


def filter_and_search(data: bytes) -> None:
    """URL query parameters become a period, account/region choices and a search; the query must answer."""
    from trailstream.analytics import queries
    from trailstream.cache import store
    from trailstream.filters import EventFilter

    fields = _fields(data) + [""] * 8
    event_filter = EventFilter(start=fields[0] or None, end=fields[1] or None,
                               accounts=tuple(filter(None, fields[2].split(","))),
                               regions=tuple(filter(None, fields[3].split(","))))
    search = queries.SearchQuery.from_dict({"text": fields[4], "event_name": fields[5], "user_name": fields[6],
                                            "resource_name": fields[7]})
    conn = store.open_cache_readonly(_small_cache())
    try:
        queries.query_search(conn, event_filter, search, limit=50)
    finally:
        conn.close()


def saved_search_link(data: bytes) -> None:
    """A shared link's search fields arrive as JSON text."""
    from trailstream.analytics import queries

    try:
        values = json.loads(_text(data))
    except ValueError:
        return
    queries.SearchQuery.from_dict(values if isinstance(values, dict) else {})


def guarded_sql(data: bytes) -> None:
    from trailstream.analytics import sqlguard

    sqlguard.run_query(_small_cache(), _text(data), time_limit=0.5, row_cap=100)


def alert_rule(data: bytes) -> None:
    """A custom rule's fields as the Alerts page or a settings import would take them."""
    from trailstream.notify import alerts

    fields = _fields(data) + [""] * 5
    kind = "sql" if fields[0].startswith("s") else "search"
    threshold = int.from_bytes(fields[3].encode()[:2] or b"\x01", "big")
    rule = alerts.AlertRule(None, kind, fields[1], query=fields[2], threshold=threshold,
                            window_minutes=max(0, len(fields[4])), recipients=tuple(fields[4].split(",")))
    alerts.check_rule(rule)
    rule.describe()


def _expected_errors() -> dict[str, tuple[type[BaseException], ...]]:
    from trailstream.analytics import sqlguard
    from trailstream.ingest import messages, records

    return {
        "records": (records.LogFileError,),
        "messages": (messages.MessageError,),
        "sql": (sqlguard.QueryRefused, sqlguard.QueryFailed),
        "rule": (ValueError,),  # describe() of a search rule whose fields are not a JSON object
    }


def _sql_seeds() -> list[bytes]:
    from trailstream.analytics import sqlguard

    return [example.sql.encode() for example in sqlguard.EXAMPLE_QUERIES] + [b"DELETE FROM events", b"ATTACH 'x' AS y"]


def harnesses() -> dict[str, Harness]:
    expected = _expected_errors()
    return {harness.name: harness for harness in (
        Harness("records", parse_log_file, expected["records"], lambda: _files("events", "events-gz", "irregular")),
        Harness("messages", parse_message, expected["messages"], lambda: _files("messages")),
        Harness("settings", load_settings, (), lambda: [
            b'db = "x.db"\n[[sources]]\nname = "q"\nkind = "sqs"\nqueue = "q"\nbuckets = ["b"]\n',
            b'[detections]\nburst_threshold = 5\n[smtp]\nhost = "localhost"\nsender = "a@b.c"\n',
            b'[alerts]\nchannels = ["json://127.0.0.1/x"]\ndigest_every = "1h"\n']),
        Harness("filters", filter_and_search, (), lambda: [
            b"2026-01-01T00:00:00Z\x002026-12-31T00:00:00Z\x00111122223333\x00us-east-1\x00sg-0abc\x00RunInstances",
            b"\x00\x00\x00\x00\"' OR 1=1 --\x00%_\x00*\x00"]),
        Harness("saved_search", saved_search_link, (), lambda: [b'{"text": "sg-0abc", "read_only": "true"}']),
        Harness("sql", guarded_sql, expected["sql"], _sql_seeds),
        Harness("rule", alert_rule, expected["rule"], lambda: [b"search\x00Root\x00{\"user_name\": \"root\"}\x00\x01",
                                                                 b"sql\x00x\x00SELECT 1\x00\x05\x00a@b.c"]),
    )}


def regression_inputs(name: str) -> list[tuple[str, bytes]]:
    """Every input that once failed a harness, kept as a file so the bug stays fixed."""
    folder = REGRESSIONS / name
    return [(path.name, path.read_bytes()) for path in sorted(folder.glob("*"))] if folder.exists() else []


def run_one(harness: Harness, data: bytes) -> None:
    """Feed one input; documented errors are fine, anything else propagates as a crash."""
    try:
        harness.target(data)
    except harness.expected:
        pass
