"""The suite's own servers own their ports from the moment they are picked: no window between picking a free port and
binding it in which another server the suite starts could take it (issue 17, item 9)."""

from __future__ import annotations

import smtplib
import socket
import urllib.request

import pytest

from tests.conftest import MailServer, bound_socket, free_port, streamlit_app


def competitor(reuse: bool = False) -> socket.socket:
    """Another server's socket, as any server the suite starts would open it."""
    sock = socket.socket()
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "SO_REUSEADDR"])
def test_a_free_port_refuses_connections_and_no_other_server_can_bind_it(reuse):
    port = free_port()
    with competitor(reuse) as other, pytest.raises(OSError, match="in use"):
        other.bind(("127.0.0.1", port))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_mail_server_keeps_its_port_from_a_competing_bind_until_it_starts():
    server = MailServer()
    with competitor(reuse=True) as other, pytest.raises(OSError, match="in use"):
        other.bind(("127.0.0.1", server.port))  # the old free_port() had released it: this bind took the port
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", server.port, timeout=5)  # not started: refused, as a mail server that is down
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], "Subject: held\r\n\r\nbody")
    finally:
        server.stop()
    assert [message["Subject"] for message in server.inbox.messages] == ["held"]


def test_the_app_port_is_shared_only_with_a_server_that_asks_to_share_it():
    """Streamlit binds its port with SO_REUSEADDR: it can bind and listen on the held port, nothing else can."""
    port = bound_socket(shared=True).getsockname()[1]
    with competitor() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))
    with competitor(reuse=True) as app:
        app.bind(("127.0.0.1", port))
        app.listen()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with competitor(reuse=True) as late, pytest.raises(OSError, match="in use"):
            late.bind(("127.0.0.1", port))


def test_streamlit_serves_on_the_port_held_for_it(tmp_path):
    (tmp_path / "trailstream.toml").write_text("")
    with streamlit_app(tmp_path / "cache.db", tmp_path / "trailstream.toml") as url:
        port = int(url.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as response:
            assert response.status == 200
        with competitor(reuse=True) as other, pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", port))
