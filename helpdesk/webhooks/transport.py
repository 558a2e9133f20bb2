"""One guarded webhook POST: checked by the SSRF guard, pinned to the checked address.

The guard resolves the host once; the HTTP client then connects to exactly that
address while the request keeps the host name (Host header, TLS SNI and certificate
check), so a second DNS answer can never redirect the connection. The network
backend (tenants/netguard.py, shared with Mastodon instances) refuses any other
host, proxies from the environment are ignored, and redirects are not followed.
Timeouts: 3 s to connect, 10 s for the whole exchange, enforced on every socket read
and write. Only a bounded excerpt of the response is read.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from helpdesk.webhooks.models import LAST_ERROR_MAX, RESPONSE_EXCERPT_MAX
from helpdesk.webhooks.ssrf import Target, UrlRefused, check_url
from tenants.netguard import PinnedBackend, PinnedTransport

__all__ = ["PinnedBackend", "PostOutcome", "post_webhook"]

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


def _client(target: Target, deadline: float) -> httpx.Client:
    backend = PinnedBackend({target.host: target.address}, deadline)
    return httpx.Client(
        transport=PinnedTransport(backend),
        timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
    )
