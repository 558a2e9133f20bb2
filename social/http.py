"""The one outbound HTTP seam for connectors: timeouts, a user agent, error mapping.

Connectors call `request()`; it maps platform answers onto ConnectorError:
401 → auth (re-authorize), 429 → retry after Retry-After (seconds or an HTTP-date;
or x-rate-limit-reset),
5xx and network errors → retry, other 4xx → permanent with the platform's message.
The error keeps the answer's status, headers and body for the connectors' own
mapping. Tokens never reach the logs: only method, host and path are logged.
"""

import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from social.connectors.base import ConnectorError
from social.transport import KeepAliveTransport
from tenants import netguard

logger = logging.getLogger(__name__)
# httpx logs every request at INFO with its whole URL, query string included (where
# some platforms put tokens); this module logs method, host and path itself.
logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "Earshot/0.1 (+https://github.com/earshot-helpdesk)"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# The most one request may take in all, from waiting for a pooled connection to the
# last byte of the answer. httpx's timeouts bound each socket operation, not their
# sum: a platform that answers a byte every 9 s would hold a call for ever. The
# delivery lease (helpdesk.services.delivery.CLAIM_LEASE) is sized from this bound.
DEADLINE = 12.0
# httpx's own pool, where it is used (a proxy in the environment): enough kept-alive
# connections that a delivery batch reuses them instead of opening one per call.
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)
_client: httpx.Client | None = None
# The SSRF policy of a host a tenant chose (see `guarded_client`).
Guard = Callable[[], netguard.Policy]


class _Budget(dict[str, float | None]):
    """The per-operation timeouts of one request, clamped to what is left of its
    DEADLINE. httpcore looks up the timeout (`.get("connect")`, `"write"`, `"read"`,
    `"pool"`) before each blocking operation, so every wait ends by the deadline."""

    def __init__(self, per_operation: dict[str, float | None], deadline: float):
        super().__init__(per_operation)
        self.deadline = deadline

    def get(self, key: str, default: Any = None) -> Any:
        remaining = self.deadline - time.monotonic()
        value = super().get(key, default)
        # Never 0 or negative: that would make the socket non-blocking, not timed.
        return max(0.001, remaining if value is None else min(value, remaining))


# An outer bound set by `deadline()` for every request made inside its block.
_outer_deadline: ContextVar[float | None] = ContextVar("outer_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound all the requests made in the block to `seconds` in total (a connector's
    send may make several: a token refresh, an upload, the post)."""
    with deadline_at(time.monotonic() + seconds):
        yield


@contextmanager
def deadline_at(end: float) -> Iterator[None]:
    """Bound all the requests made in the block to end by `end` (time.monotonic()):
    the sends of one delivery batch share the deadline of their claim."""
    token = _outer_deadline.set(end)
    try:
        yield
    finally:
        _outer_deadline.reset(token)


def timeouts() -> dict[str, Any]:
    """Request extensions that end a request by DEADLINE, or sooner by `deadline()`."""
    end = time.monotonic() + DEADLINE
    outer = _outer_deadline.get()
    if outer is not None:
        end = min(end, outer)
    return {"timeout": _Budget(TIMEOUT.as_dict(), end)}


def _send_within(
    method: str, url: str, guard: Guard | None = None, **kwargs: Any
) -> httpx.Response:
    """Send, and read the whole answer by the deadline of `timeouts()`.

    social.transport (the default clients) reads the whole answer by the deadline
    itself. httpcore (the guarded clients, and the default ones behind a proxy)
    takes the body's read timeout once and applies it to each read, so an answer
    that drips in never times out by itself: its body is read here chunk by chunk
    against the deadline, and the answer rebuilt from its raw bytes (its
    content-encoding still applies).
    """
    extensions = timeouts()
    end = extensions["timeout"].deadline
    http = client() if guard is None else guarded_client(guard)
    auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
    streamed = http.send(
        http.build_request(method, url, extensions=extensions, **kwargs),
        auth=auth,
        stream=True,
    )
    if streamed.is_stream_consumed:
        return streamed  # read in full by the transport (ours, the test fakes)
    try:
        raw = bytearray()
        for chunk in streamed.iter_raw():
            raw += chunk
            if time.monotonic() > end:
                raise httpx.ReadTimeout(
                    "the answer took longer than the deadline",
                    request=streamed.request,
                )
    finally:
        streamed.close()
    return httpx.Response(
        streamed.status_code,
        headers=streamed.headers,
        content=bytes(raw),
        request=streamed.request,
    )


class OutboundBlocked(RuntimeError):
    """Raised in tests when no fake has been installed for outbound HTTP."""


# The default clients, one per thread. httpcore's pool is a list of connections
# under one lock, and on every request and every answer closed it walks the list
# and, for each idle connection, the whole list again: one pool shared by a
# delivery batch's 32 threads held about 32 connections, and that walk (a thousand
# checks per call) and the lock cost about 0.1 ms of CPU per call.
_thread = threading.local()


def client() -> httpx.Client:
    """This thread's pooled client (tests replace every thread's at once through
    `install_client`)."""
    if _client is not None:
        return _client
    pooled: httpx.Client | None = getattr(_thread, "client", None)
    if pooled is None:
        pooled = _thread.client = pooled_client()
    return pooled


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies()


class PlatformClient(httpx.Client):
    """httpx's client without its cookie jar. A thread's client serves every
    tenant's accounts: a cookie a platform set on one account's call went out
    with the next calls of every account on that platform, and reading each
    answer's Set-Cookie headers into the jar cost 0.06-0.11 ms of CPU per call.
    No connector uses cookies (bearer tokens and signed requests)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("the platform clients keep no cookies")


def pooled_client() -> httpx.Client:
    """A new client as `client()` makes them: over social.transport's kept-alive
    connections (about 0.35 ms of CPU less per call than httpcore's), or httpx's
    own transport when the environment names a proxy (only httpx's honours it)."""
    if urllib.request.getproxies():
        return PlatformClient(
            timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, limits=LIMITS
        )
    return PlatformClient(
        transport=KeepAliveTransport(),
        timeout=TIMEOUT,
        headers={"User-Agent": USER_AGENT},
    )


def install_client(replacement: httpx.Client | None) -> None:
    """Use `replacement` in every thread (tests: a blocking one, or one bound to a
    fake server); None: back to each thread's own pooled client."""
    global _client
    _client = replacement
    _guarded.clear()


# Hosts a tenant chose (Mastodon instances) are called through clients of their own,
# one per guard: every connection they open is checked by the SSRF guard and pinned
# to the checked address (tenants/netguard.py). Tests do not replace these clients:
# the guard itself keeps them off everything but the networks a test allows.
_guarded: dict["Guard", httpx.Client] = {}


def guarded_client(guard: Guard) -> httpx.Client:
    """The pooled client whose connections go through `guard`'s SSRF policy."""
    pooled = _guarded.get(guard)
    if pooled is None:
        pooled = _guarded[guard] = httpx.Client(
            transport=netguard.guarded_transport(guard),
            timeout=TIMEOUT,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            trust_env=False,
        )
    return pooled


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110: delay-seconds or an
    HTTP-date); None when absent or malformed. A date in the past is 0."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    moment = time.time() if now is None else now
    return max(0.0, when.timestamp() - moment)


def _retry_after(response: httpx.Response) -> float | None:
    parsed = parse_retry_after(response.headers.get("retry-after"))
    if parsed is not None:
        return parsed
    reset = response.headers.get("x-rate-limit-reset") or response.headers.get(
        "x-ratelimit-reset"
    )
    if reset:
        try:
            value = float(reset)
        except ValueError:
            return None
        # X sends an epoch timestamp; Reddit sends seconds until reset.
        return max(0.0, value - time.time()) if value > 10**9 else value
    return None


def _platform_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(data, dict):
        for key in ("detail", "message", "error_description", "error", "title"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value
    return str(data)[:300]


def request(
    method: str, url: str, *, guard: Guard | None = None, **kwargs: Any
) -> httpx.Response:
    """Send one request; return the response when 2xx, else raise ConnectorError.

    The whole request, answer included, takes at most DEADLINE seconds (less inside
    a `deadline()` block), however slowly the platform drips its answer. With a
    `guard` (a host a tenant chose), the connection goes through the SSRF guard; a
    refused address is a permanent ConnectorError saying why (a name that does not
    resolve, a transient one).
    """
    try:
        response = _send_within(method, url, guard, **kwargs)
    except httpx.TimeoutException as exc:
        raise ConnectorError(
            f"The platform did not answer in time ({exc.__class__.__name__})."
        ) from exc
    except httpx.TransportError as exc:
        refusal = netguard.refusal_in(exc)
        if refusal is not None:
            raise ConnectorError(
                refusal.message, permanent=not refusal.transient
            ) from exc
        raise ConnectorError(
            f"Could not reach the platform ({exc.__class__.__name__})."
        ) from exc
    if response.is_success:
        # DEBUG: a delivery worker makes hundreds of calls a second, and a line
        # per call (formatted and redacted) was a measurable share of its CPU.
        # Refusals and failures stay at INFO.
        logger.debug(
            "%s %s%s -> %s",
            method,
            response.url.host,
            response.url.path,
            response.status_code,
        )
        return response
    logger.info(
        "%s %s%s -> %s",
        method,
        response.url.host,
        response.url.path,
        response.status_code,
    )
    message = _platform_message(response)
    status = response.status_code
    answer: dict[str, Any] = {
        "status": status,
        "headers": response.headers,
        "body": response.content,
    }
    if status == 401:
        raise ConnectorError(message, auth=True, permanent=True, **answer)
    if status == 429 or status >= 500:
        raise ConnectorError(message, retry_after=_retry_after(response), **answer)
    raise ConnectorError(message, permanent=True, **answer)
