"""Fixtures shared by the whole suite: the real corpus, a fresh cache path, a moto server on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

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
