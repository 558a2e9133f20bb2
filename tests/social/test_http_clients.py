"""social/http.py's default pooled client is one per thread (httpcore's pool walks
all its connections, once per idle one, on every request, under one lock: shared by
a delivery batch's threads, that walk and the lock were a tenth of a call's CPU);
a client a test installs serves every thread."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from social import http as social_http


def clients_of_threads(count: int) -> list[httpx.Client]:
    """Each of `count` threads' client, asked twice by the same thread."""
    together = threading.Barrier(count)  # `count` threads, none serving two

    def twice(_: int) -> httpx.Client:
        together.wait(timeout=5)
        first = social_http.client()
        assert social_http.client() is first
        return first

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(twice, range(count)))


def test_each_thread_has_its_own_pooled_client() -> None:
    social_http.install_client(None)

    clients = [*clients_of_threads(4), social_http.client()]

    assert len({id(client) for client in clients}) == 5
    for client in clients:
        assert client.headers["user-agent"] == social_http.USER_AGENT
        assert client.timeout == social_http.TIMEOUT


def test_an_installed_client_serves_every_thread() -> None:
    installed = httpx.Client()
    social_http.install_client(installed)

    assert [*clients_of_threads(4), social_http.client()] == [installed] * 5
