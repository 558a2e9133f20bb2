"""The fast path's own request ids and acknowledgement metrics (WebhookFastPath with
observe=True): what WebhookAckMetrics in front of it gives, without the second
layer. Every answer, header and observation is the stacked pair's."""

import asyncio
import json
import re
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from asgiref.sync import async_to_sync
from prometheus_client import REGISTRY

from helpdesk.observability.asgi import WebhookAckMetrics
from helpdesk.observability.logs import current_request_id
from social.models import SocialAccount, WebhookEvent
from social.sandbox.network import sign
from social.webhook_asgi import WebhookFastPath
from social.webhooks import check_delivery
from tenants.models import Tenant
from tests.social.test_webhooks import SECRET, conversations, post_event
from tests.social.test_webhooks import routed as routed

ACK = "earshot_webhook_ack_seconds_count"


def count(platform: str, status: str) -> float:
    value = REGISTRY.get_sample_value(ACK, {"platform": platform, "status": status})
    return value or 0.0


async def django(scope: Any, receive: Any, send: Any) -> None:
    """Stands for Django: 404 for any request it gets."""
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"not here"})


def call(
    app: Any,
    path: str,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    method: str = "POST",
    length: bytes | None = None,
) -> list[dict[str, Any]]:
    """The messages `app` sends for one request (Content-Length: the body's, or
    `length` as given)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    declared = str(len(body)).encode() if length is None else length
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-length", declared), *headers],
    }
    async_to_sync(app)(scope, receive, send)
    return sent


def stacked() -> Any:
    return WebhookAckMetrics(WebhookFastPath(django))


def fused() -> Any:
    return WebhookFastPath(django, observe=True)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/hooks/sandbox/", b'{"event_id": "1"}', [], 401),
        (
            "/hooks/sandbox/",
            b"{}",
            [(b"x-sandbox-signature", b"sha256=" + b"0" * 64)],
            401,
        ),
        ("/hooks/instagram/", b'{"id": "1"}', [], 401),
        ("/hooks/reddit/", b"{}", [], 404),
        ("/hooks/no-such-platform/", b"{}", [], 404),
        ("/hooks/Not_Taken/", b"{}", [], 404),  # Django's answer
    ],
)
def test_answers_and_observations_are_the_stacked_pairs(
    path: str, body: bytes, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    given = [*headers, (b"x-request-id", b"platform-id-1")]
    label = path.split("/")[2]
    label = label if label in ("sandbox", "instagram", "reddit") else "other"
    before = count(label, str(status))

    expected = call(stacked(), path, body, given)
    answered = call(fused(), path, body, given)

    assert answered == expected
    assert answered[0]["status"] == status
    assert answered[0]["headers"][-1] == (b"x-request-id", b"platform-id-1")
    assert count(label, str(status)) == before + 2


def test_a_bad_content_length_is_answered_and_observed_alike() -> None:
    before = count("sandbox", "400")
    given = [(b"x-request-id", b"abc-2")]

    expected = call(stacked(), "/hooks/sandbox/", b"{}", given, length=b"many")
    answered = call(fused(), "/hooks/sandbox/", b"{}", given, length=b"many")

    assert answered == expected
    assert answered[0]["status"] == 400
    assert json.loads(answered[1]["body"]) == {
        "error": "Content-Length is not a number"
    }
    assert count("sandbox", "400") == before + 2


def test_a_new_request_id_is_set_while_checking_and_echoed() -> None:
    # A sync request of an earlier test may have left its id in this thread.
    outer = current_request_id()
    seen: list[str | None] = []

    def checking(platform: str, body: bytes, headers: dict[str, str]) -> Any:
        seen.append(current_request_id())
        return check_delivery(platform, body, headers)

    with patch("social.webhook_asgi.check_delivery", checking):
        first = call(fused(), "/hooks/sandbox/", b"{}", [(b"x-request-id", b"<bad>")])
        second = call(fused(), "/hooks/sandbox/", b"{}", [])

    ids = [sent[0]["headers"][-1] for sent in (first, second)]
    assert [name for name, _ in ids] == [b"x-request-id", b"x-request-id"]
    assert all(re.fullmatch(rb"[0-9a-f]{32}", value) for _, value in ids)
    assert ids[0] != ids[1]
    assert seen == [value.decode() for _, value in ids]
    assert outer not in seen
    assert current_request_id() == outer  # reset when the answer is sent


def test_other_requests_pass_untouched() -> None:
    before = count("other", "404")
    for method, path in (("GET", "/hooks/sandbox/"), ("POST", "/inbox/")):
        sent = call(fused(), path, b"", [], method=method)
        assert sent[0]["headers"] == [(b"content-type", b"text/plain")]
    assert count("other", "404") == before


@pytest.mark.django_db(transaction=True)
def test_a_delivery_is_stored_in_its_workspace_only_and_observed(
    routed: SocialAccount, tenant: Tenant, other_tenant: Tenant
) -> None:
    from django.core.asgi import get_asgi_application

    body = json.dumps(post_event("100", text="@acmeair my bag")).encode()
    headers = {"X-Sandbox-Signature": sign(body, SECRET), "X-Request-ID": "r-1"}
    before = count("sandbox", "200")

    async def run() -> httpx.Response:
        app = WebhookFastPath(get_asgi_application(), observe=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            return await client.post("/hooks/sandbox/", content=body, headers=headers)

    response = asyncio.run(run())
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert response.headers["x-request-id"] == "r-1"
    assert count("sandbox", "200") == before + 1
    assert WebhookEvent.objects.get().tenant_id == tenant.pk
    assert conversations(tenant) == [("mention", "@acmeair my bag")]
    assert conversations(other_tenant) == []
