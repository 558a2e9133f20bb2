"""Webhook acknowledgement metrics and request ids, in front of the fast path.

`WebhookAckMetrics` wraps the HTTP app (helpdesk/asgi.py) and looks only at POSTs
to `/hooks/<platform>/`, which social.webhook_asgi answers before Django's
middleware: it gives them a request id (echoed in X-Request-ID) and observes
earshot_webhook_ack_seconds from the call to the answer's start, by platform and
status. Every other request passes through untouched (RequestIdMiddleware gives
those their id inside Django).
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from helpdesk import metrics
from helpdesk.observability.logs import REQUEST_ID_HEADER, begin_request, end_request

Scope = Any
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HOOKS_PREFIX = "/hooks/"
HEADER_NAME = REQUEST_ID_HEADER.lower().encode()


class WebhookAckMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not path.startswith(HOOKS_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        platform = path[len(HOOKS_PREFIX) :].split("/", 1)[0]
        given = next(
            (value for name, value in scope["headers"] if name == HEADER_NAME), b""
        )
        request_id, token = begin_request(given.decode("latin-1"))
        encoded = request_id.encode()

        async def send_observed(message: Any) -> None:
            if message["type"] == "http.response.start":
                metrics.observe_webhook_ack(
                    platform, message["status"], time.perf_counter() - started
                )
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), (HEADER_NAME, encoded)],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            end_request(token)
