"""One fuzz harness per entry point that takes outside bytes, with the errors it is documented to raise.

Each harness takes bytes and either returns or raises one of its `expected` errors; anything else is a crash.
`fuzz/run.py` drives them with atheris; `tests/test_fuzz_regressions.py` replays their seeds and every input that
ever failed (tests/data/fuzz/<harness>/).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TRAILSTREAM_CORPUS", ROOT.parent / "shared" / "corpus"))
SIGMA = Path(os.environ.get("TRAILSTREAM_SIGMA", ROOT.parent / "shared" / "sigma"))
GOLDEN = ROOT / "tests" / "data" / "integrity_golden.json"  # a digest, its RSA public key and CloudTrail's signature
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


@lru_cache(maxsize=1)
def _scratch_folder() -> Path:
    """One folder per process for the harnesses whose entry point reads a file: rewritten per input, never re-made,
    in memory (tmpfs) where the machine has one, since a disk write per input would set the pace."""
    memory = Path("/dev/shm")
    folder = tempfile.mkdtemp(prefix="trailstream-fuzz-", dir=memory if memory.is_dir() else None)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(folder)


def load_settings(data: bytes) -> None:
    """The settings file never raises: every problem must come back as a sentence in `errors`."""
    from trailstream import config

    path = _scratch_folder() / "trailstream.toml"
    path.write_bytes(data)
    settings = config.load_settings(path)
    if not settings.errors:
        for name in ("detections", "smtp", "alerts"):
            settings.section(name)


@lru_cache(maxsize=1)
def _small_cache() -> str:
    """A small demo cache, built once per process, that the query harnesses read."""
    from trailstream.ingest import sync

    path = _scratch_folder() / "fuzz.db"
    sync.import_demo(path, 400, seed=1, workers=1)
    return str(path)


@lru_cache(maxsize=1)
def _small_cache_reader():
    """One read-only connection to the small cache per process, as a page's session holds one."""
    from trailstream.cache import store

    return store.open_cache_readonly(_small_cache())


def _fields(data: bytes) -> list[str]:
    """Split fuzz bytes into text fields, the way a URL's query parameters arrive."""
    return _text(data).split("\x00")


def filter_and_search(data: bytes) -> None:
    """URL query parameters become a period, account/region choices and a search; the query must answer."""
    from trailstream.analytics import queries
    from trailstream.filters import EventFilter

    fields = _fields(data) + [""] * 8
    event_filter = EventFilter(start=fields[0] or None, end=fields[1] or None,
                               accounts=tuple(filter(None, fields[2].split(","))),
                               regions=tuple(filter(None, fields[3].split(","))))
    search = queries.SearchQuery.from_dict({"text": fields[4], "event_name": fields[5], "user_name": fields[6],
                                            "resource_name": fields[7]})
    queries.query_search(_small_cache_reader(), event_filter, search, limit=50)


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


# --- digest files and Sigma rules -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _golden() -> tuple[bytes, str, bytes]:
    """The golden vector's public key, signature and digest bytes: the key every fuzzed digest is checked with."""
    vector = json.loads(GOLDEN.read_text())
    return bytes.fromhex(vector["public_key_der_hex"]), vector["signature"], bytes.fromhex(vector["digest_hex"])


def _store_digest(ingester, data: bytes) -> bool:
    """Store a digest file the way a sync does, at the key it names, with the golden signature as its S3 metadata."""
    from trailstream.cache import codec
    from trailstream.cache import integrity as tables
    from trailstream.cache.bookkeeping import FileRef
    from trailstream.ingest import records

    parsed = records.parse_log_file(data, codec.default_compressor(), max_bytes=16 << 20)
    if parsed.kind != "digest":
        return False
    bucket, key = (value if isinstance(value, str) and value else default for value, default in (
        (parsed.digest.values.get("digest_s3_bucket"), "trail-bucket"),
        (parsed.digest.values.get("digest_s3_object"), "AWSLogs/fuzz.json.gz")))
    ingester.store_digest(FileRef("s3", bucket, key), parsed.digest)
    tables.save_digest_signature(ingester.db, bucket, key, {"signature": _golden()[1]})
    return True


@lru_cache(maxsize=1)
def _digest_sync():
    """One open sync per process into a cache holding the golden digest, so a fuzzed digest can chain to it (not a
    batch: each input's savepoint is then its own transaction, and nothing stays open between inputs)."""
    from trailstream.ingest import sync

    ingester = sync.Ingester(_scratch_folder() / "digests.db", "s3", workers=1).__enter__()
    _store_digest(ingester, _golden()[2])
    return ingester


def verify_digest_file(data: bytes) -> None:
    """A digest file as a sync meets it: parsed, stored, then verified with the stored one; 'malformed' and
    'signature invalid' are states, never exceptions. Each input is rolled back."""
    from datetime import datetime, timezone

    from trailstream.analytics import integrity

    ingester = _digest_sync()
    ingester.db.execute("SAVEPOINT fuzz_input")
    try:
        if _store_digest(ingester, data):
            report = integrity.verify_integrity(ingester.db.conn, {"golden": _golden()[0]},
                                                now=datetime(2026, 3, 2, tzinfo=timezone.utc))
            report.counts()
            report.problems()
    finally:
        ingester.db.execute("ROLLBACK TO fuzz_input")
        ingester.db.execute("RELEASE fuzz_input")
        integrity._checked_signature.cache_clear()  # a per-process memo of up to 2^17 checks: each input starts afresh


def _digest_seeds() -> list[bytes]:
    import gzip

    golden = _golden()[2] if GOLDEN.exists() else b""
    documented = [data for data in _files("messages") if b"digestPublicKeyFingerprint" in data]
    return [golden, gzip.compress(golden, mtime=0), *documented,
            b'{"digestPublicKeyFingerprint": 7, "logFiles": "none"}',  # tests/test_integrity.py's unreadable digest
            golden.replace(b'"digestStartTime": "2026', b'"digestStartTime": "x026')]


def load_sigma_rule(data: bytes) -> None:
    """One rule file's text, loaded and converted: refused with a reason is fine, any exception is a crash, and so
    is a rule left without a state, a reason or what evaluation would run."""
    from trailstream.analytics import sigma

    path = _scratch_folder() / "rule.yml"
    path.write_bytes(data)
    for rule in sigma.load_rules([path]).rules:
        runs = rule.where is not None or rule.correlation is not None
        if not (rule.status == sigma.CONVERTED and runs or rule.status in (sigma.UNSUPPORTED, sigma.FAILED) and rule.reason):
            raise AssertionError(f"rule {rule.rule_id!r} left {rule.status!r} without a reason or a query")


def _sigma_seeds() -> list[bytes]:
    """The tests' rules (features, correlations, hostile files) first, then SigmaHQ's CloudTrail rules."""
    from tests import test_sigma as fixtures

    written = [fixtures.rule_yaml(fixtures.FEATURE_IDS[name], detection) for name, (detection, *_) in fixtures.FEATURES.items()]
    written += [fixtures.CORRELATION, fixtures.VALUE_AND_TEMPORAL, *(text for _, text in fixtures.HOSTILE.values())]
    rules = sorted((SIGMA / "rules").rglob("*.yml")) if SIGMA.exists() else []
    return [text.encode() for text in written] + [path.read_bytes() for path in rules]


def _expected_errors() -> dict[str, tuple[type[BaseException], ...]]:
    from trailstream.analytics import sqlguard
    from trailstream.ingest import messages, records

    return {
        "records": (records.LogFileError,),
        "messages": (messages.MessageError,),
        "sql": (sqlguard.QueryRefused, sqlguard.QueryFailed),
        "rule": (ValueError,),  # describe() of a search rule whose fields are not a JSON object
        "digests": (records.LogFileError,),  # not readable as JSON; a readable but wrong digest is 'malformed'
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
        Harness("digests", verify_digest_file, expected["digests"], _digest_seeds),
        Harness("sigma", load_sigma_rule, (), _sigma_seeds),
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
