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


HELD_SOCKETS: list[socket.socket] = []  # bound for the whole session: their ports are never handed to another server


def bound_socket(shared: bool = False) -> socket.socket:
    """A loopback TCP socket bound to a port the OS picks (port 0) and kept bound, not listening: connections to it are
    refused and no other server can bind it; `shared` lets a server that also sets SO_REUSEADDR (Streamlit) bind it."""
    sock = socket.socket()
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    HELD_SOCKETS.append(sock)
    return sock


def free_port() -> int:
    """A port where nothing listens, for the whole session: held bound, so no server the suite starts can take it."""
    return bound_socket().getsockname()[1]


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


class BoundController(Controller):
    """aiosmtpd's threaded Controller serving on a socket bound beforehand, instead of binding host:port itself."""

    def __init__(self, handler, sock: socket.socket, **options):
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **options)
        self.sock = sock

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


class MailServer:
    """A real SMTP server on 127.0.0.1 whose port is its own from construction: bound at once (a connection is
    refused until start()), listening from start() to stop(), so no other server can take the port in between."""

    def __init__(self, **options):
        self.sock = bound_socket()
        self.port = self.sock.getsockname()[1]
        self.inbox = Inbox()
        self.options = options
        self.controller = None

    def start(self) -> "MailServer":
        self.controller = BoundController(self.inbox, self.sock, **self.options)
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


def write_demo_logs(folder: Path, events: int, seed: int, end) -> Path:
    """`folder` holding the demo's gzip log files (flat, named as CloudTrail names them): what the lake tests read."""
    from trailstream.ingest import demo

    for key, data in demo.iter_log_files(demo.generate_records(events=events, seed=seed, end=end)):
        (folder / Path(key).name).write_bytes(data)
    return folder


def cache_and_lake(folder: Path, logs: Path, lake_name: str = "lake") -> tuple[Path, Path]:
    """A cache imported and a lake compacted from the same log files, in `folder`: what the lake tests compare."""
    from trailstream.ingest import lake, sync

    sync.import_paths(folder / "cache.db", [logs], workers=1)
    lake.compact_paths(folder / lake_name, [logs], workers=1)
    return folder / "cache.db", folder / lake_name


def point_app_at_lake(monkeypatch, tmp_path: Path, cache: Path, lake_folder: Path | None) -> Path:
    """The app on `cache`, its pages reading the DuckDB lake in `lake_folder` (the cache alone when None)."""
    settings = tmp_path / "trailstream.toml"
    settings.write_text(f'[backend]\nkind = "athena"\nlake = "{lake_folder}"\n' if lake_folder else "")
    point_app_at(monkeypatch, cache, settings)
    return settings


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


STARTUP_LIMIT = 180  # seconds; Streamlit starts in a few, more on a busy machine


@contextmanager
def streamlit_app(db: Path, settings: Path, secrets: str | None = None):
    """`streamlit run app.py` on a cache and a settings file, headless on loopback; yields its URL once healthy.
    `secrets` is a secrets.toml text in which {port} stands for the app's port (an [auth] redirect_uri needs it)."""
    import os
    import subprocess
    import sys

    placeholder = bound_socket(shared=True)  # the port is ours from now: Streamlit binds it with SO_REUSEADDR too
    port = placeholder.getsockname()[1]
    folder = settings.parent
    secrets_file = folder / "secrets.toml"
    if secrets is not None:
        secrets_file.write_text(secrets.replace("{port}", str(port)))
    env = {**os.environ, "TRAILSTREAM_DB": str(db), "TRAILSTREAM_CONFIG": str(settings), "PYTHONUNBUFFERED": "1"}
    log_path = folder / f"streamlit-{port}.log"
    with open(log_path, "wb") as log:  # a file, not a pipe: a pipe nobody reads fills up and stalls the server
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
             "--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
             "--secrets.files", str(secrets_file)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(url: str, process, log_path: Path) -> None:
    """Poll Streamlit's health endpoint until it answers ok (or the server dies, or the limit passes)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"streamlit exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"streamlit did not answer on {url} within {STARTUP_LIMIT}s: {log_path.read_text()[-2000:]}")
