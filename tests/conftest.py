"""Fixtures shared by the whole suite: the real corpus, a fresh cache path, a moto server on loopback."""

from __future__ import annotations

import email
import os
import socket
from contextlib import contextmanager
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

# TRAILSTREAM_CORPUS: where the corpus is when the suite runs from a copy (mutmut runs it from mutants/).
CORPUS = Path(os.environ.get("TRAILSTREAM_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/corpus (real CloudTrail files); tests that need it skip with a reason where it is absent."""
    if not (CORPUS / "expected.json").exists():
        pytest.skip(f"the shared CloudTrail corpus is not at {CORPUS}")
    return CORPUS


@pytest.fixture
def db_path(tmp_path) -> Path:
    """Where a fresh cache goes; nothing exists there yet."""
    return tmp_path / "trailstream.db"


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto server on 127.0.0.1; boto3 reaches it over HTTP through AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # the OS picks a port it never frees
    server.start()
    _, port = server.get_host_and_port()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """Environment pointing boto3 at the moto server with throwaway credentials; state reset per test."""
    import urllib.request

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    return moto_endpoint


@pytest.fixture
def sqs(aws):
    """An SQS client on the moto server."""
    import boto3

    return boto3.client("sqs")


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    """A cache of 3,000 demo events ending now (one per test module), checkpointed into one file."""
    from trailstream.cache import store
    from trailstream.ingest import sync

    path = tmp_path_factory.mktemp("demo") / "demo.db"
    sync.import_demo(path, 3000, seed=3)
    store.open_cache(path).close()  # the last connection to close checkpoints the WAL into the main file
    return path


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(envelope.content, policy=policy.default) for envelope in self.envelopes]


class MailServer:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self, **options):
        self.port = free_port()
        self.inbox = Inbox()
        self.options = options
        self.controller = None

    def start(self) -> "MailServer":
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **self.options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def smtp_section(self, **overrides) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "security": "none", "timeout": 10,
                "sender": "TrailStream <trailstream@example.com>", "recipients": ["secops@example.com"]} | overrides


@pytest.fixture
def mail_server():
    """A running SMTP server on loopback collecting what it receives (`.inbox`)."""
    server = MailServer().start()
    yield server
    server.stop()


# --- The app through Streamlit's AppTest ------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
APP_TIMEOUT = 120


def page_specs() -> list[tuple[str, str, str]]:
    """(section, file, title) of every page app.py lists, read from its PAGES table so later pages are tested too."""
    import ast

    tree = ast.parse(APP.read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(target, "id", None) == "PAGES" for target in node.targets))
    return [(section, path, title) for section, specs in ast.literal_eval(table).items()
            for path, title, _icon in specs]


HOME_PAGE = page_specs()[0][1]


@pytest.fixture(scope="session")
def demo_cache_file(tmp_path_factory) -> Path:
    """A demo cache built once: generated activity (with its planted findings) through the real import pipeline."""
    from trailstream.ingest import sync

    path = tmp_path_factory.mktemp("app-demo") / "demo.db"
    sync.import_demo(path, events=3000, seed=11, workers=1)
    return path


@pytest.fixture
def app_demo_cache(demo_cache_file, tmp_path, monkeypatch) -> Path:
    """A private copy of the demo cache, and the app pointed at it with an empty settings file."""
    import shutil

    path = tmp_path / "demo.db"
    shutil.copy(demo_cache_file, path)
    point_app_at(monkeypatch, path, tmp_path / "trailstream.toml")
    return path


@pytest.fixture
def app_empty_cache(tmp_path, monkeypatch) -> Path:
    """A cache with the schema and not one event, and the app pointed at it."""
    from trailstream.cache import store

    path = tmp_path / "empty.db"
    store.open_cache(path).close()
    point_app_at(monkeypatch, path, tmp_path / "trailstream.toml")
    return path


def point_app_at(monkeypatch, db: Path, settings: Path) -> None:
    monkeypatch.setenv("TRAILSTREAM_DB", str(db))
    monkeypatch.setenv("TRAILSTREAM_CONFIG", str(settings))
    monkeypatch.chdir(ROOT)


def open_page(page: str, **query):
    """Run the app, then switch to `page` with the given URL query (the shared-view link)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT)
    at.query_params.update(query)
    at.run()
    if page != HOME_PAGE:
        at.switch_page(page).run()
    assert not at.exception, [exception.value for exception in at.exception]
    return at


def metric(at, label: str) -> int:
    """The integer a page shows under a metric's label."""
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no {label!r} metric; metrics: {[m.label for m in at.metric]}"
    return int(values[0].replace(",", ""))


@contextmanager
def streamlit_app(db: Path, settings: Path):
    """`streamlit run app.py` on a cache and a settings file, headless on loopback; yields its URL once healthy."""
    import os
    import subprocess
    import sys

    from tests.test_browser import wait_until_healthy

    port = free_port()
    env = {**os.environ, "TRAILSTREAM_DB": str(db), "TRAILSTREAM_CONFIG": str(settings)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.headless", "true",
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
