"""One guarded webhook POST: checked by the SSRF guard, pinned to the checked address.

The guard resolves the host once; the HTTP client then connects to exactly that
address while the request keeps the host name (Host header, TLS SNI and certificate
check), so a second DNS answer can never redirect the connection. The network
backend refuses any other host, proxies from the environment are ignored, and
redirects are not followed. Timeouts: 3 s to connect, 10 s for the whole exchange,
enforced on every socket read and write. Only a bounded excerpt of the response is
read.
"""

import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpcore
import httpx

from helpdesk.webhooks.models import LAST_ERROR_MAX, RESPONSE_EXCERPT_MAX
from helpdesk.webhooks.ssrf import Target, UrlRefused, check_url

CONNECT_TIMEOUT = 3.0
TOTAL_TIMEOUT = 10.0
USER_AGENT = "Earshot-Webhooks/1.0"


@dataclass(frozen=True)
class PostOutcome:
    """What one delivery attempt got back."""

    ok: bool
    status_code: int | None = None
    error: str = ""
    response_excerpt: str = ""


def post_webhook(url: str, *, body: bytes, headers: dict[str, str]) -> PostOutcome:
    """POST `body` to `url` through the SSRF guard; 2xx is success, nothing raises.

    Call outside any database transaction (it waits on the network).
    """
    try:
        target = check_url(url)
    except UrlRefused as refused:
        return PostOutcome(ok=False, error=_short(f"Refused: {refused.message}"))
    deadline = time.monotonic() + TOTAL_TIMEOUT
    try:
        with (
            _client(target, deadline) as client,
            client.stream(
                "POST", target.url, content=body, headers=_headers(headers)
            ) as response,
        ):
            excerpt = _excerpt(response.iter_bytes(), deadline)
    except httpx.TimeoutException as exc:
        return PostOutcome(ok=False, error=f"Timed out ({type(exc).__name__}).")
    except httpx.HTTPError as exc:
        return PostOutcome(ok=False, error=f"Could not connect ({type(exc).__name__}).")
    status = response.status_code
    if 200 <= status < 300:
        return PostOutcome(ok=True, status_code=status, response_excerpt=excerpt)
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed; use the final URL."
    else:
        error = f"HTTP {status}."
    return PostOutcome(
        ok=False, status_code=status, error=error, response_excerpt=excerpt
    )


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}


def _excerpt(chunks: Iterable[bytes], deadline: float) -> str:
    collected = b""
    for chunk in chunks:
        collected += chunk
        if len(collected) >= RESPONSE_EXCERPT_MAX or time.monotonic() > deadline:
            break
    return collected[:RESPONSE_EXCERPT_MAX].decode("utf-8", errors="replace")


def _short(text: str) -> str:
    return text[:LAST_ERROR_MAX]


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; one context serves every request.
    return httpx.create_ssl_context(trust_env=False)


def _client(target: Target, deadline: float) -> httpx.Client:
    return httpx.Client(
        transport=PinnedTransport({target.host: target.address}, deadline),
        timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
    )


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport over a network backend pinned to checked addresses."""

    def __init__(self, pins: dict[str, str], deadline: float) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=1,
            retries=0,
            network_backend=PinnedBackend(pins, deadline),
        )


class PinnedBackend(httpcore.NetworkBackend):
    """Connects only to the pinned address of each host, within one deadline."""

    def __init__(self, pins: dict[str, str], deadline: float) -> None:
        self.pins = pins
        self.deadline = deadline
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = self.pins.get(host)
        if address is None:
            raise httpcore.ConnectError(f"{host} was not checked by the SSRF guard")
        stream = self.inner.connect_tcp(
            address,
            port,
            timeout=_bounded(timeout, self.deadline),
            local_address=local_address,
            socket_options=socket_options,
        )
        return DeadlineStream(stream, self.deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self.inner = inner
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, timeout=_bounded(timeout, self.deadline))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, timeout=_bounded(timeout, self.deadline))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.start_tls(
            ssl_context,
            server_hostname=server_hostname,
            timeout=_bounded(timeout, self.deadline),
        )
        return DeadlineStream(stream, self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


def _bounded(timeout: float | None, deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpcore.ReadTimeout("the webhook took longer than its total timeout")
    return remaining if timeout is None else min(timeout, remaining)
