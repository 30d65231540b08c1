"""Fixtures shared by the whole suite: the real corpus, a fresh cache path, a moto server on loopback."""

from __future__ import annotations

import email
import socket
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


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

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
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
