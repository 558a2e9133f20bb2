"""The webhook acknowledgement fast path, in front of Django's ASGI handler.

Platforms POST deliveries in bursts and want an answer within seconds; DESIGN §6
budgets p99 < 20 ms. Through Django's ASGI handler every sync middleware and view
of every request shares one thread, so a burst of deliveries queues behind itself
(and behind the agents' page views). Here a POST to `/hooks/<platform>/` skips the
middleware stack: the body is read and verified on the event loop
(`social.webhooks.check_delivery`, the same rules as the Django view: signature,
size, platform) and stored by the process's group commit (social/group_commit.py):
the deliveries that arrive together are inserted by one statement, each answered
once its row is committed, and their tasks published after the answers.

Nothing here needs the middleware: no session, cookie, CSRF (platforms sign the
body) or tenant (routing happens later, in the task). Everything else, including
the platforms' GET checks, goes to Django.

Under helpdesk.web_server the usual delivery (a POST to exactly /hooks/<platform>/
with a Content-Length the loop verifies) does not even get an ASGI task: the
worker's HTTP protocol hands its headers and body to `WebhookFastPath.take` and
`.answer` (the module's `direct_http`, helpdesk/asgi.py) and writes the answer
itself, with the bytes uvicorn would write. The checks, the store and the answers
are the ones below; any other request to /hooks/ takes the ASGI path.
"""

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from helpdesk import metrics
from helpdesk.observability.asgi import HEADER_NAME as REQUEST_ID
from helpdesk.observability.asgi import WebhookAckMetrics
from helpdesk.observability.logs import begin_request, end_request
from social.group_commit import group_commit
from social.webhooks import ACCEPTED, Delivery, Stored, check_delivery, receiving
from tenants.outages import RETRY_AFTER_SECONDS

# ASGI servers and Django's handler type these differently (dict, Mapping,
# MutableMapping); the fast path accepts any of them.
Scope = Any
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_NAME = REQUEST_ID.decode("latin-1")
HOOK_PATH = re.compile(r"/hooks/(?P<platform>[a-z0-9_-]{1,32})/")
HOOK_URL = re.compile(rb"/hooks/([a-z0-9_-]{1,32})/")
# Bodies up to this size are verified on the event loop (an HMAC and a JSON parse
# of a few kilobytes take microseconds); larger ones on a worker thread.
VERIFY_ON_LOOP_BYTES = 64 * 1024


class WebhookFastPath:
    """Wrap the HTTP app: POST /hooks/<platform>/ is answered here, the rest passes.

    With `observe`, the fast path also does for every POST to /hooks/ what
    `helpdesk.observability.asgi.WebhookAckMetrics` does in front of it (the two
    are never stacked): the request id (the platform's X-Request-ID when sane, else
    a new one) is set for the request's log lines and echoed last among the
    answer's headers, and earshot_webhook_ack_seconds observes the time from the
    call to the answer's start, by platform and status. The deliveries it answers
    itself get both without a second layer (a wrapped `send` and a copy of each
    answer's start): about a third of the loop's CPU per acknowledgement, in
    process. Other POSTs to /hooks/ (a path it does not take) go to Django through
    WebhookAckMetrics.
    """

    def __init__(self, app: ASGIApp, *, observe: bool = False) -> None:
        self.app = app
        self.observed: ASGIApp | None = WebhookAckMetrics(app) if observe else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = HOOK_PATH.fullmatch(scope.get("path", ""))
        if scope["type"] != "http" or scope["method"] != "POST" or match is None:
            await (self.observed or self.app)(scope, receive, send)
            return
        platform = match["platform"]
        # One pass over the headers; the request id is read from what it makes.
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        if self.observed is None:
            status, answer = await _acknowledge(platform, headers, receive)
            await _answer(send, status, answer)
            return
        started = time.perf_counter()
        request_id, token = begin_request(headers.get(REQUEST_ID_NAME, ""))
        try:
            status, answer = await _acknowledge(platform, headers, receive)
            metrics.observe_webhook_ack(platform, status, time.perf_counter() - started)
            await _answer(send, status, answer, request_id.encode())
        finally:
            end_request(token)

    # -- below the ASGI task: helpdesk.web_server's HTTP protocol ------------------

    def take(
        self, method: bytes, url: bytes, raw_headers: list[tuple[bytes, bytes]]
    ) -> "_Taken | None":
        """Whether a request is answered directly (its headers are complete): a
        POST to exactly /hooks/<platform>/ (no query, nothing escaped) whose
        declared body the loop verifies (within the size limit, not chunked). Any
        other goes through `__call__`, whose answers these are too."""
        if method != b"POST":
            return None
        match = HOOK_URL.fullmatch(url)
        if match is None:
            return None
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in raw_headers
        }
        declared = headers.get("content-length", "")
        if (
            not declared.isascii()
            or not declared.isdigit()
            or "transfer-encoding" in headers
            or int(declared) > min(receiving().max_bytes, VERIFY_ON_LOOP_BYTES)
        ):
            return None
        return _Taken(match[1].decode(), headers, time.perf_counter())

    def answer(
        self,
        taken: "_Taken",
        body: bytes,
        respond: Callable[[int, list[tuple[bytes, bytes]], bytes], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        """Check and store a taken delivery; `respond(status, headers, body)` once
        it is answered (at once, or after its group's commit), or `fail(error)`
        (the server's 500) if answering raised."""
        platform = taken.platform
        headers = taken.headers
        request_id = b""
        if self.observed is None:
            checked = check_delivery(platform, body, headers)
        else:
            given, token = begin_request(headers.get(REQUEST_ID_NAME, ""))
            request_id = given.encode()
            try:
                checked = check_delivery(platform, body, headers)
            finally:
                end_request(token)
        observe = self.observed is not None

        def finish(status: int, payload: dict[str, str]) -> None:
            if observe:
                metrics.observe_webhook_ack(
                    platform, status, time.perf_counter() - taken.started
                )
            respond(status, *_parts(status, payload, request_id))

        if not isinstance(checked, Delivery):
            finish(*checked)
            return

        def stored(answer: Stored) -> None:
            try:
                finish(answer.status, answer.answer)
            except Exception as error:
                fail(error)

        group_commit.submit(checked, asyncio.get_running_loop(), stored)


class _Taken:
    """A delivery `WebhookFastPath.take` answers directly, until its body is in."""

    __slots__ = ("headers", "platform", "started")

    def __init__(self, platform: str, headers: dict[str, str], started: float) -> None:
        self.platform = platform
        self.headers = headers
        self.started = started


async def _acknowledge(
    platform: str, headers: dict[str, str], receive: Receive
) -> tuple[int, dict[str, str]]:
    """Read, check and store one delivery: the answer's status and payload.
    `headers` have lower-case names (the last of a repeated one wins)."""
    limit = receiving().max_bytes
    try:
        declared = int(headers.get("content-length") or 0)
    except ValueError:
        return 400, {"error": "Content-Length is not a number"}
    body = None if declared > limit else await _read_body(receive, limit)
    if body is None:
        return 413, {"error": f"body over {limit} bytes"}
    if len(body) <= VERIFY_ON_LOOP_BYTES:
        checked = check_delivery(platform, body, headers)
    else:
        checked = await asyncio.to_thread(check_delivery, platform, body, headers)
    if isinstance(checked, Delivery):
        stored = await group_commit.store(checked)
        return stored.status, stored.answer
    return checked


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes `limit` bytes."""
    message = await receive()
    if message["type"] != "http.disconnect" and not message.get("more_body", False):
        # The usual delivery: the whole body in its first message.
        body: bytes = message.get("body", b"")
        return None if len(body) > limit else body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def _answer(
    send: Send, status: int, payload: dict[str, str], request_id: bytes = b""
) -> None:
    headers, body = _parts(status, payload, request_id)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _parts(
    status: int, payload: dict[str, str], request_id: bytes
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An answer's headers (the request id last, when there is one) and body."""
    if payload is ACCEPTED and status == 200:  # most answers: no key to build
        headers, body = _ACCEPTED
    else:
        headers, body = _encoded(status, tuple(payload.items()))
    if request_id:
        headers = [*headers, (REQUEST_ID, request_id)]
    return headers, body


@lru_cache(maxsize=256)
def _encoded(
    status: int, payload: tuple[tuple[str, str], ...]
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of an answer; the few frequent ones are encoded once."""
    body = json.dumps(dict(payload)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    return headers, body


_ACCEPTED = _encoded(200, tuple(ACCEPTED.items()))
