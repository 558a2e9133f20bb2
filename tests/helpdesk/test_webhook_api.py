"""Webhook endpoints over the REST API, and the API channel's round trip.

The round trip: a custom source pushes a message into an API channel, an agent
answers through the API, the reply is delivered, and the integration's receiver on
127.0.0.1 gets `message.updated` with the reply's text, signed so that the
README's verification snippet accepts it.
"""

import re
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from helpdesk.models import WebhookDelivery, WebhookEndpoint
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import DeliveryQueue
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    Receiver,
    WebhookQueue,
    fake_dns_fixture,
    loopback_hooks_fixture,
    run_delivery,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db(transaction=True)

URL = "https://hooks.example.com/earshot"
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def _fixtures(fake_dns: FakeDns, webhook_queue: WebhookQueue) -> None:
    """No real DNS; deliveries are captured and run explicitly."""


def client_for(tenant: Tenant, user: User, scope: str = "admin") -> APIClient:
    with tenant_context(tenant):
        _, raw = create_api_token(membership_of(tenant, user), name="t", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def endpoints(tenant: Tenant) -> list[tuple[str, bool]]:
    with tenant_context(tenant):
        return list(WebhookEndpoint.objects.values_list("url", "is_active"))


def readme_verify() -> Any:
    """The `verify` function exactly as README.md shows it to integrators."""
    text = README.read_text()
    match = re.search(r"```python\n(import hashlib, hmac, time.*?)```", text, re.S)
    assert match is not None
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)  # noqa: S102 - our own README's snippet
    return namespace["verify"]


def test_an_admin_manages_an_endpoint(tenant: Tenant, owner: User) -> None:
    client = client_for(tenant, owner)
    base = f"/api/v1/t/{tenant.slug}/webhooks/"

    created = client.post(
        base,
        {"url": URL, "description": "CRM", "events": ["message.created"]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", body["secret"])
    endpoint = body["endpoint"]
    assert (endpoint["url"], endpoint["events"], endpoint["is_active"]) == (
        URL,
        ["message.created"],
        True,
    )
    detail = f"{base}{endpoint['id']}/"

    assert [e["id"] for e in client.get(base).json()] == [endpoint["id"]]
    revealed = client.get(f"{detail}secret/").json()["secret"]
    assert revealed == body["secret"]
    rotated = client.post(f"{detail}secret/").json()["secret"]
    assert rotated != body["secret"]

    changed = client.patch(
        detail, {"events": [], "is_active": False}, format="json"
    ).json()
    assert (changed["events"], changed["is_active"]) == ([], False)
    refused_ping = client.post(f"{detail}ping/")
    assert refused_ping.status_code == 409
    assert client.patch(detail, {"is_active": True}, format="json").json()["is_active"]
    ping = client.post(f"{detail}ping/")
    assert ping.status_code == 202
    assert ping.json()["event_type"] == "ping"
    log = client.get(f"{detail}deliveries/").json()
    assert [(d["event_type"], d["status"]) for d in log] == [("ping", "pending")]

    assert client.delete(detail).status_code == 204
    assert endpoints(tenant) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://loopback.example.com/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://private.example.com/x",
        "ftp://hooks.example.com/x",
        "not a url",
    ],
)
def test_unsafe_urls_are_field_errors_and_nothing_is_saved(
    tenant: Tenant, owner: User, url: str
) -> None:
    response = client_for(tenant, owner).post(
        f"/api/v1/t/{tenant.slug}/webhooks/", {"url": url}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["url"]
    assert endpoints(tenant) == []


def test_bad_event_names_are_field_errors(tenant: Tenant, owner: User) -> None:
    response = client_for(tenant, owner).post(
        f"/api/v1/t/{tenant.slug}/webhooks/",
        {"url": URL, "events": ["message.exploded"]},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["events"]
    assert endpoints(tenant) == []


def test_a_refused_url_change_keeps_the_endpoint_as_it_was(
    tenant: Tenant, owner: User
) -> None:
    client = client_for(tenant, owner)
    made = client.post(
        f"/api/v1/t/{tenant.slug}/webhooks/", {"url": URL}, format="json"
    ).json()
    detail = f"/api/v1/t/{tenant.slug}/webhooks/{made['endpoint']['id']}/"
    response = client.patch(
        detail,
        {"description": "new", "url": "https://10.0.0.1/x"},
        format="json",
    )
    assert response.status_code == 400
    with tenant_context(tenant):
        endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.description) == (URL, "")


@pytest.mark.parametrize(
    ("role_user", "scope"), [("agent", "write"), ("owner", "write")]
)
def test_webhooks_need_an_admin_and_the_admin_scope(
    tenant: Tenant,
    owner: User,
    agent: User,
    role_user: str,
    scope: str,
) -> None:
    user = {"agent": agent, "owner": owner}[role_user]
    client = client_for(tenant, user, scope)
    listed = client.get(f"/api/v1/t/{tenant.slug}/webhooks/")
    created = client.post(
        f"/api/v1/t/{tenant.slug}/webhooks/", {"url": URL}, format="json"
    )
    assert (listed.status_code, created.status_code) == (403, 403)
    assert endpoints(tenant) == []


def test_another_workspaces_endpoint_is_404(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User
) -> None:
    theirs = client_for(other_tenant, outsider).post(
        f"/api/v1/t/{other_tenant.slug}/webhooks/", {"url": URL}, format="json"
    )
    their_id = theirs.json()["endpoint"]["id"]
    ours = client_for(tenant, owner)
    for method, suffix in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("get", "secret/"),
        ("post", "secret/"),
        ("post", "ping/"),
        ("get", "deliveries/"),
    ):
        path = f"/api/v1/t/{tenant.slug}/webhooks/{their_id}/{suffix}"
        response = getattr(ours, method)(path, {"is_active": False}, format="json")
        assert response.status_code == 404, (method, suffix)
        assert theirs.json()["secret"] not in response.content.decode()
    assert endpoints(other_tenant) == [(URL, True)]
    with tenant_context(other_tenant):
        assert WebhookDelivery.objects.count() == 0


def test_the_api_channel_round_trip_reaches_the_integration_signed(
    tenant: Tenant,
    owner: User,
    agent: User,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
    delivery_queue: DeliveryQueue,
) -> None:
    receiver = loopback_hooks()
    admin_api = client_for(tenant, owner)
    hook = admin_api.post(
        f"/api/v1/t/{tenant.slug}/webhooks/",
        {"url": f"{receiver.base_url}/hooks", "events": ["message.updated"]},
        format="json",
    ).json()
    with tenant_context(tenant):
        brand_id = Brand.objects.get().pk
    channel = admin_api.post(
        f"/api/v1/t/{tenant.slug}/channels/",
        {"brand_id": brand_id, "name": "Shop chat"},
        format="json",
    ).json()
    agent_api = client_for(tenant, agent, "write")
    pushed = agent_api.post(
        f"/api/v1/t/{tenant.slug}/channels/{channel['id']}/messages/",
        {
            "external_id": "chat-1",
            "text": "Where is my order 1234?",
            "author": {"id": "user-7", "name": "Sam"},
        },
        format="json",
    ).json()
    reply = agent_api.post(
        f"/api/v1/t/{tenant.slug}/conversations/{pushed['conversation_id']}/messages/",
        {"text": "It left our warehouse this morning, Sam."},
        format="json",
    )
    assert reply.status_code == 201, reply.json()

    delivery_queue.run_due()
    for delivery_id in webhook_queue.ids():
        run_delivery(tenant, delivery_id)

    sent = [
        request
        for request in receiver.requests
        if request.json()["data"].get("changed", {}).get("delivery_status") == "sent"
    ]
    assert len(sent) == 1
    request = sent[0]
    envelope = request.json()
    assert envelope["type"] == "message.updated"
    assert envelope["tenant"] == tenant.slug
    message = envelope["data"]["message"]
    assert message["id"] == reply.json()["id"]
    assert message["text"].startswith("It left our warehouse this morning, Sam.")
    assert (message["direction"], message["delivery_status"]) == ("out", "sent")
    assert message["external_id"] == f"earshot-{_client_ref(tenant, message['id'])}"
    verify = readme_verify()
    assert verify(hook["secret"], request.headers["earshot-signature"], request.body)
    assert not verify(
        "wrong-secret", request.headers["earshot-signature"], request.body
    )
    assert not verify(
        hook["secret"], request.headers["earshot-signature"], request.body + b" "
    )
    with tenant_context(tenant):
        assert AuditEvent.objects.filter(action="api_channel.created").count() == 1


def _client_ref(tenant: Tenant, message_id: int) -> str:
    from helpdesk.models import Message

    with tenant_context(tenant):
        return str(Message.objects.get(pk=message_id).client_ref)
