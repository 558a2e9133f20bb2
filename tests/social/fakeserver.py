"""One small fake-server helper for every platform: real HTTP on 127.0.0.1.

A test (or a per-platform fake built on this) registers routes; each handler gets the
parsed request and returns (status, headers, body). Every request is recorded, so
tests can assert the exact outbound request shape. `use_fake(server)` points
`social.http` at it; anything not on 127.0.0.1 is still refused.
"""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from social import http as social_http
from social.transport import KeepAliveTransport


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


Reply = tuple[int, dict[str, str], Any]
Handler = Callable[[FakeRequest], Reply]


@dataclass
class FakeServer:
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[FakeRequest] = field(default_factory=list)
    base_url: str = ""

    def route(self, method: str, path: str, handler: Handler | Reply) -> None:
        """Answer `method path` with a handler or a fixed (status, headers, body)."""
        if callable(handler):
            self.routes[(method, path)] = handler
        else:
            fixed = handler
            self.routes[(method, path)] = lambda request: fixed

    def handle(self, request: FakeRequest) -> Reply:
        self.requests.append(request)
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return (
                404,
                {},
                {"error": f"no fake route for {request.method} {request.path}"},
            )
        return handler(request)


@dataclass
class FakeConsent:
    """A platform's OAuth consent page, where the person always answers at once.

    GET <authorize path>?client_id&redirect_uri&state[&code_challenge] redirects
    (302) to redirect_uri with `code` and `state`, or with `error=access_denied`
    when `deny` is set. It remembers the redirect_uri and PKCE challenge it was
    shown, so the fake's token endpoint can check the exchange against them.
    """

    client_id: str
    code: str
    deny: bool = False
    redirect_uri: str = ""
    code_challenge: str = ""

    def install(self, server: FakeServer, path: str) -> "FakeConsent":
        server.route("GET", path, self.answer)
        return self

    def answer(self, request: FakeRequest) -> Reply:
        query = {key: values[0] for key, values in request.query.items()}
        if query.get("client_id") != self.client_id or not query.get("redirect_uri"):
            return (400, {}, {"error": "invalid_request"})
        self.redirect_uri = query["redirect_uri"]
        self.code_challenge = query.get("code_challenge", "")
        answer = (
            {
                "error": "access_denied",
                "error_description": "The user denied the request.",
            }
            if self.deny
            else {"code": self.code}
        )
        answer["state"] = query.get("state", "")
        location = f"{self.redirect_uri}?{urlencode(answer)}"
        return (302, {"Location": location}, b"")


def _handler_class(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = FakeRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            status, headers, body = server.handle(request)
            payload = (
                body
                if isinstance(body, bytes)
                else (
                    body.encode()
                    if isinstance(body, str)
                    else json.dumps(body).encode()
                )
            )
            self.send_response(status)
            if not any(k.lower() == "content-type" for k in headers):
                self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def running(server: FakeServer) -> Iterator[FakeServer]:
    """Serve `server` on a free 127.0.0.1 port for the block."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(server))
    server.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


class LoopbackOnly(httpx.BaseTransport):
    """Real HTTP, but only to 127.0.0.1 (tests never reach the network), through
    the transport of social.http's default clients."""

    def __init__(self) -> None:
        self._inner = KeepAliveTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in {"127.0.0.1", "localhost"}:
            raise social_http.OutboundBlocked(
                f"outbound HTTP to {request.url.host} in a test"
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class Blocked(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise social_http.OutboundBlocked(
            f"outbound HTTP to {request.url} without a fake (tests.social.fakeserver)"
        )


def blocking_client() -> httpx.Client:
    return httpx.Client(transport=Blocked())


def loopback_client() -> httpx.Client:
    return httpx.Client(
        transport=LoopbackOnly(),
        timeout=httpx.Timeout(5.0),
        headers={"User-Agent": social_http.USER_AGENT},
    )
