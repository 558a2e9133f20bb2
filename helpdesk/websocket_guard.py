"""The two ASGI layers in front of every websocket route (helpdesk/asgi.py).

`OriginGuard` lets a handshake through only when its Origin header is exactly one of
the site's origins: scheme, host and port, with default ports normalised
(`https://earshot.example` and `https://earshot.example:443` are the same origin).
The origins are settings.WEBSOCKET_ALLOWED_ORIGINS, or when that is empty the
origin of SITE_URL plus CSRF_TRUSTED_ORIGINS (whose `*.` wildcards match
subdomains, as Django's CSRF check reads them). A page served over http on the
site's host name, or on another port, is another origin and is refused; so are a
missing Origin and the opaque origin `null`. Comparing host names only (channels'
AllowedHostsOriginValidator) would let any page on the same host, say a dev server
on another port, open an agent's live stream with the agent's cookies.

`CloseWithCode` makes every refusal reach the browser with its reason. A websocket
closed before it is accepted becomes an HTTP 403 to the handshake, which the
browser reports as close code 1006, the same code as a dropped network, so the
page would keep reconnecting for ever. Refusals are therefore accepted and closed
at once with a 44xx code (4401 not signed in, 4403 no access, 4404 no such
workspace): no group is joined and nothing is sent before the close.
"""

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CLOSE_FORBIDDEN_ORIGIN = 4403
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def normalise_origin(text: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None when
    `text` is not a web origin (`null`, a path, credentials, another scheme)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or parts.username:
        return None
    host = parts.hostname.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


def allowed_origins() -> list[str]:
    """The origins whose pages may open the live stream (see the module docstring).

    A site on a loopback name also allows its twin (127.0.0.1 and localhost, same
    scheme and port): the demo is opened under either.
    """
    configured: list[str] = list(getattr(settings, "WEBSOCKET_ALLOWED_ORIGINS", []))
    if not configured:
        site = str(settings.SITE_URL)
        parts = urlsplit(site)
        configured = [
            f"{parts.scheme}://{parts.netloc}",
            *settings.CSRF_TRUSTED_ORIGINS,
        ]
        if parts.hostname in LOOPBACK_NAMES:
            for name in LOOPBACK_NAMES:
                configured.append(
                    f"{parts.scheme}://{parts.netloc.replace(parts.hostname, name)}"
                )
    return configured


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Whether the Origin header `origin` is exactly one of `allowed`."""
    if origin is None:
        return False
    wanted = normalise_origin(origin)
    if wanted is None:
        return False
    for entry in allowed:
        if "*." in entry:
            if _wildcard_match(wanted, entry):
                return True
        elif normalise_origin(entry) == wanted:
            return True
    return False


def _wildcard_match(origin: str, pattern: str) -> bool:
    """`https://*.example.com` matches `https://a.example.com`, not the apex."""
    parent = normalise_origin(pattern.replace("*.", "", 1))
    if parent is None:
        return False
    scheme, _, rest = parent.partition("://")
    wanted_scheme, _, wanted_rest = origin.partition("://")
    return wanted_scheme == scheme and wanted_rest.endswith("." + rest)


def _origin_header(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return str(value.decode("latin-1"))
    return None


async def _accept_and_close(receive: Receive, send: Send, code: int) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code})


class OriginGuard:
    """Refuse websocket handshakes from any origin but the site's (4403)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        origin = _origin_header(scope)
        if origin_allowed(origin, allowed_origins()):
            await self.app(scope, receive, send)
            return
        logger.info("websocket refused: origin %r is not the site's", origin)
        await _accept_and_close(receive, send, CLOSE_FORBIDDEN_ORIGIN)


class CloseWithCode:
    """Turn a close sent before accept into accept-then-close, keeping its code."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        accepted = False

        async def send_with_code(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close" and not accepted:
                accepted = True
                await send({"type": "websocket.accept"})
            await send(message)

        await self.app(scope, receive, send_with_code)
