"""social/http.py bounds a request's total time, not only each socket wait: the
delivery lease relies on it (helpdesk.services.delivery.CLAIM_LEASE)."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from social import http as social_http
from social.connectors.base import ConnectorError
from tests.social.fakeserver import loopback_client

DRIP = 0.2  # seconds between two bytes: no single read ever waits long


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """Answers 200 with a 1,000-byte body, sent one byte every DRIP seconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                for _ in range(1000):
                    if stop.is_set():
                        return
                    try:
                        connection.sendall(b"a")
                    except OSError:
                        break
                    time.sleep(DRIP)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    social_http.install_client(loopback_client())
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_dripping_answer_is_cut_at_the_block_deadline(dripping_server: str) -> None:
    started = time.monotonic()

    with social_http.deadline(1.0), pytest.raises(ConnectorError) as caught:
        social_http.request("GET", dripping_server)

    took = time.monotonic() - started
    assert 0.9 <= took < 1.0 + 3 * DRIP
    assert caught.value.message == "The platform did not answer in time (ReadTimeout)."
    assert caught.value.permanent is False


def test_without_a_block_a_request_is_cut_at_the_deadline(
    dripping_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(social_http, "DEADLINE", 1.5)
    started = time.monotonic()

    with pytest.raises(ConnectorError):
        social_http.request("GET", dripping_server)

    assert 1.4 <= time.monotonic() - started < 1.5 + 3 * DRIP
