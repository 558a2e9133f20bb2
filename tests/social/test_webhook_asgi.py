"""The ASGI fast path for webhook deliveries (social/webhook_asgi.py).

Deliveries are POSTed to the real ASGI stack in-process (httpx's ASGI transport):
the fast path answers them on a worker thread with the same rules as the Django
view; every other request reaches Django untouched.
"""

import asyncio
import json
from typing import Any

import httpx
import pytest
from django.core.asgi import get_asgi_application

from social.models import SocialAccount, WebhookEvent
from social.sandbox.network import sign
from social.webhook_asgi import WebhookFastPath
from tenants.models import Tenant
from tests.social.test_webhooks import SECRET, conversations, post_event
from tests.social.test_webhooks import routed as routed

pytestmark = pytest.mark.django_db(transaction=True)


def call(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    app: Any = None,
) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(
            app=app or WebhookFastPath(get_asgi_application())
        )
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            return await client.request(method, path, content=body, headers=headers)

    return asyncio.run(run())


def signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Sandbox-Signature": sign(body, SECRET),
    }


def test_a_delivery_is_stored_and_processed_through_the_fast_path(
    routed: SocialAccount, tenant: Tenant
) -> None:
    body, headers = signed(post_event("100", text="@acmeair where is my bag"))
    response = call("POST", "/hooks/sandbox/", body, headers)
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    event = WebhookEvent.objects.get()
    assert (event.status, event.tenant_id) == ("processed", tenant.pk)
    assert conversations(tenant) == [("mention", "@acmeair where is my bag")]

    again = call("POST", "/hooks/sandbox/", body, headers)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert WebhookEvent.objects.count() == 1


def test_an_unsigned_delivery_is_refused_and_not_kept(routed: SocialAccount) -> None:
    body, headers = signed(post_event("100"))
    headers["X-Sandbox-Signature"] = "sha256=" + "0" * 64
    response = call("POST", "/hooks/sandbox/", body, headers)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_bodies_over_the_limit_get_413_declared_or_streamed(
    routed: SocialAccount, settings: Any
) -> None:
    settings.WEBHOOK_MAX_BYTES = 2048
    big = b"x" * 4096
    declared = call("POST", "/hooks/sandbox/", big, {"Content-Type": "text/plain"})
    assert declared.status_code == 413

    async def chunks() -> Any:
        for _ in range(4):
            yield b"y" * 1024

    async def streamed() -> httpx.Response:
        transport = httpx.ASGITransport(app=WebhookFastPath(get_asgi_application()))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            return await client.post("/hooks/sandbox/", content=chunks())

    assert asyncio.run(streamed()).status_code == 413
    assert WebhookEvent.objects.count() == 0


def test_a_bad_content_length_is_400() -> None:
    async def run() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(dict(message))

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/hooks/sandbox/",
            "headers": [(b"content-length", b"lots")],
        }
        await WebhookFastPath(get_asgi_application())(scope, receive, send)
        return sent

    sent = asyncio.run(run())
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {"error": "Content-Length is not a number"}
    assert WebhookEvent.objects.count() == 0


def test_unknown_and_polled_platforms_are_404() -> None:
    for platform in ("myspace", "reddit"):
        response = call("POST", f"/hooks/{platform}/", b"{}")
        assert response.status_code == 404, platform
    assert WebhookEvent.objects.count() == 0


def test_everything_else_reaches_django() -> None:
    seen: list[tuple[str, str]] = []

    async def django(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = WebhookFastPath(django)
    assert call("GET", "/hooks/x/?crc_token=abc", app=app).status_code == 204
    assert call("POST", "/api/v1/t/acme/conversations/", app=app).status_code == 204
    assert call("POST", "/hooks/sandbox/extra/", app=app).status_code == 204
    assert seen == [
        ("GET", "/hooks/x/"),
        ("POST", "/api/v1/t/acme/conversations/"),
        ("POST", "/hooks/sandbox/extra/"),
    ]


def test_json_that_only_pythons_reader_takes_is_as_valid_as_before(
    routed: SocialAccount,
) -> None:
    """The validity check reads with orjson first; what orjson refuses and
    json.loads reads (NaN, a lone surrogate escape, a UTF-16 body) stays valid."""
    nan = json.dumps({**post_event("100"), "score": float("nan")}).encode()
    surrogate = json.dumps({**post_event("100"), "note": "\ud800"}).encode()
    utf16 = json.dumps(post_event("100")).encode("utf-16")
    answers = [
        call("POST", "/hooks/sandbox/", *with_signature(body))
        for body in (nan, surrogate, utf16)
    ]

    assert [(a.status_code, a.json()) for a in answers] == [
        (200, {"status": "accepted"})
    ] * 3
    events = WebhookEvent.objects.order_by("pk")
    assert [(bytes(e.body), e.status, e.error) for e in events] == [
        (body, "processed", "") for body in (nan, surrogate, utf16)
    ]


def with_signature(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {
        "Content-Type": "application/json",
        "X-Sandbox-Signature": sign(body, SECRET),
    }


def driven(body_messages: list[bytes], headers: dict[str, str]) -> list[dict[str, Any]]:
    """What the fast path sends for a POST whose body comes in these messages (no
    Content-Length, so only the bytes read count against the limit)."""

    async def run() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        messages = [
            {
                "type": "http.request",
                "body": chunk,
                "more_body": at < len(body_messages),
            }
            for at, chunk in enumerate(body_messages, 1)
        ]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: Any) -> None:
            sent.append(dict(message))

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/hooks/sandbox/",
            "headers": [
                (name.lower().encode(), value.encode())
                for name, value in headers.items()
            ],
        }
        await WebhookFastPath(get_asgi_application())(scope, receive, send)
        assert messages == []  # every message was read, none asked for after
        return sent

    return asyncio.run(run())


def test_a_body_whole_in_one_message_or_in_several_is_read_to_the_limit(
    routed: SocialAccount, settings: Any
) -> None:
    body, headers = with_signature(json.dumps(post_event("100")).encode())
    settings.WEBHOOK_MAX_BYTES = len(body)
    whole = driven([body], headers)
    parts = driven([body[:10], b"", body[10:]], headers)
    over = driven([body + b" "], headers)
    over_in_parts = driven([body[:10], body[10:] + b" "], headers)

    assert [(m["status"], json.loads(b["body"])) for m, b in (whole, parts)] == [
        (200, {"status": "accepted"}),
        (200, {"status": "duplicate"}),  # the same event, read whole from parts
    ]
    limit = {"error": f"body over {len(body)} bytes"}
    assert [(m["status"], json.loads(b["body"])) for m, b in (over, over_in_parts)] == [
        (413, limit)
    ] * 2
    assert [bytes(event.body) for event in WebhookEvent.objects.all()] == [body]
