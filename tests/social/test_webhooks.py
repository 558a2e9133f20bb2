"""/hooks/<platform>/: verify, store first, route, and never lose or double anything
(invariants 2 and 6; tenancy.md test 24). The Sandbox platform's signed JSON."""

import json
import uuid
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from helpdesk.models import Conversation, Message
from social.connectors.base import TokenSet
from social.models import ChannelRoute, SocialAccount, WebhookEvent
from social.sandbox.network import sign
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "earshot-test-hook"


def connect(tenant: Tenant, user: User, external_id: str, handle: str) -> SocialAccount:
    membership = membership_of(tenant, user)
    with tenant_context(tenant):
        brand = Brand.objects.get()
        return connect_account(
            membership,
            brand=brand,
            platform="sandbox",
            tokens=TokenSet(
                access_token="tok", account_external_id=external_id, handle=handle
            ),
        )


def post_event(
    for_account: str,
    *,
    text: str = "@acmeair my bag is lost",
    author: str = "77",
    event_id: str | None = None,
    mentions: bool = True,
) -> dict[str, Any]:
    post_id = str(uuid.uuid4().int % 10**9)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": "post.created",
        "for_account": {
            "id": for_account,
            "handle": "acmeair",
            "name": "Acme",
            "followers": 1,
        },
        "mentions_account": mentions,
        "post": {
            "id": post_id,
            "text": text,
            "author": {"id": author, "handle": "jo", "name": "Jo", "followers": 120},
            "in_reply_to": None,
            "root": post_id,
            "mentions": ["acmeair"] if mentions else [],
            "language": "en",
            "created_at": timezone.now().isoformat(),
            "url": f"/sandbox/#post-{post_id}",
        },
    }


def deliver(
    payload: dict[str, Any] | bytes,
    *,
    secret: str | None = SECRET,
    signature: str | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers: dict[str, str] = {}
    if signature is not None:
        headers["X-Sandbox-Signature"] = signature
    elif secret is not None:
        headers["X-Sandbox-Signature"] = sign(body, secret)
    return Client().post(
        "/hooks/sandbox/", body, content_type="application/json", headers=headers
    )


def conversations(tenant: Tenant) -> list[tuple[str, str]]:
    with tenant_context(tenant):
        return list(Conversation.objects.values_list("origin", "preview"))


@pytest.fixture
def routed(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User
) -> SocialAccount:
    connect(other_tenant, outsider, "900", "globex")
    return connect(tenant, owner, "100", "acmeair")


def test_a_signed_delivery_is_stored_routed_and_recorded_in_its_tenant_only(
    routed: SocialAccount, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = deliver(post_event("100"))
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    event = WebhookEvent.objects.get()
    assert (event.status, event.items, event.tenant_id) == ("processed", 1, tenant.pk)
    assert conversations(tenant) == [("mention", "@acmeair my bag is lost")]
    assert conversations(other_tenant) == []


def test_a_replayed_delivery_is_acknowledged_and_records_nothing_twice(
    routed: SocialAccount, tenant: Tenant
) -> None:
    payload = post_event("100", event_id="evt-1")
    assert deliver(payload).json() == {"status": "accepted"}
    replay = deliver(payload)
    assert (replay.status_code, replay.json()) == (200, {"status": "duplicate"})
    assert WebhookEvent.objects.count() == 1
    with tenant_context(tenant):
        assert Message.objects.count() == 1


def test_the_same_post_in_a_new_delivery_is_one_message(
    routed: SocialAccount, tenant: Tenant
) -> None:
    first = post_event("100")
    second = {**first, "event_id": "another-delivery"}
    deliver(first)
    deliver(second)
    assert WebhookEvent.objects.count() == 2
    with tenant_context(tenant):
        assert Message.objects.count() == 1


@pytest.mark.parametrize("signature", ["", "sha256=deadbeef", "sha1=abc"])
def test_a_bad_or_missing_signature_is_refused_and_nothing_is_kept(
    routed: SocialAccount, tenant: Tenant, signature: str
) -> None:
    response = deliver(post_event("100"), signature=signature)
    assert (response.status_code, response.json()) == (
        401,
        {"error": "missing or invalid signature"},
    )
    assert WebhookEvent.objects.count() == 0
    assert conversations(tenant) == []


def test_a_signature_with_another_secret_is_refused(routed: SocialAccount) -> None:
    response = deliver(post_event("100"), secret="not-the-secret")
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_a_body_over_the_limit_gets_413(routed: SocialAccount) -> None:
    with override_settings(WEBHOOK_MAX_BYTES=1024):
        response = deliver(post_event("100", text="x" * 2000))
    assert response.status_code == 413
    assert response.json() == {"error": "body over 1024 bytes"}
    assert WebhookEvent.objects.count() == 0


def test_a_signed_malformed_body_gets_400_and_is_kept_for_inspection(
    routed: SocialAccount, tenant: Tenant
) -> None:
    response = deliver(b"{not json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("not a valid sandbox delivery")
    event = WebhookEvent.objects.get()
    assert (event.status, bytes(event.body)) == ("malformed", b"{not json")
    assert conversations(tenant) == []


def test_a_signed_body_with_missing_fields_is_kept_as_malformed(
    routed: SocialAccount, tenant: Tenant
) -> None:
    response = deliver({"event_id": "e-9", "type": "post.created"})
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == "malformed"
    assert "for_account" in event.error
    assert conversations(tenant) == []


def test_an_unknown_account_is_kept_as_unroutable_and_answered(
    routed: SocialAccount, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = deliver(post_event("555"))
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == "unroutable"
    assert conversations(tenant) == []
    assert conversations(other_tenant) == []


def test_a_private_message_opens_a_private_conversation(
    routed: SocialAccount, tenant: Tenant
) -> None:
    payload = {
        "event_id": "dm-1",
        "type": "message.created",
        "for_account": {
            "id": "100",
            "handle": "acmeair",
            "name": "Acme",
            "followers": 1,
        },
        "message": {
            "id": "m1",
            "text": "My booking is ABC123",
            "sender": {"id": "77", "handle": "jo", "name": "Jo", "followers": 120},
            "recipient": {
                "id": "100",
                "handle": "acmeair",
                "name": "Acme",
                "followers": 1,
            },
            "thread": "dm-77-100",
            "created_at": timezone.now().isoformat(),
        },
    }
    assert deliver(payload).status_code == 200
    with tenant_context(tenant):
        conversation = Conversation.objects.get()
    assert (
        conversation.origin,
        conversation.channel_state,
        conversation.private_thread_ref,
    ) == (
        "direct_message",
        "private",
        "dm-77-100",
    )


def test_the_accounts_own_post_is_not_recorded(
    routed: SocialAccount, tenant: Tenant
) -> None:
    assert deliver(post_event("100", author="100")).status_code == 200
    assert WebhookEvent.objects.get().status == "processed"
    assert conversations(tenant) == []


def test_the_challenge_is_echoed_and_unknown_platforms_are_404() -> None:
    assert Client().get("/hooks/sandbox/", {"challenge": "abc"}).content == b"abc"
    assert Client().get("/hooks/sandbox/").status_code == 400
    assert (
        Client()
        .post("/hooks/myspace/", b"{}", content_type="application/json")
        .status_code
        == 404
    )


def test_another_workspace_cannot_take_over_a_connected_account(
    routed: SocialAccount, other_tenant: Tenant, outsider: User
) -> None:
    from tenants.exceptions import WorkspaceError

    with pytest.raises(WorkspaceError, match="connected to another workspace"):
        connect(other_tenant, outsider, "100", "acmeair")
    route = ChannelRoute.objects.get(platform="sandbox", external_account_id="100")
    assert route.account_id == routed.pk
    with tenant_context(other_tenant):
        assert SocialAccount.objects.filter(external_id="100").count() == 0


def test_the_sandbox_is_404_when_switched_off() -> None:
    import importlib

    from django.urls import clear_url_caches

    import helpdesk.urls

    assert Client().get("/sandbox/").status_code == 200
    try:
        with override_settings(SANDBOX_ENABLED=False):
            importlib.reload(helpdesk.urls)
            clear_url_caches()
            assert Client().get("/sandbox/").status_code == 404
            assert Client().post("/sandbox/api/oauth/token").status_code == 404
    finally:
        importlib.reload(helpdesk.urls)
        clear_url_caches()
    assert Client().get("/sandbox/").status_code == 200


@pytest.mark.parametrize("platform", ["reddit", "mastodon", "bluesky"])
def test_polled_platforms_have_no_webhook_endpoint(platform: str) -> None:
    for response in (
        Client().get(f"/hooks/{platform}/", {"hub.challenge": "x"}),
        Client().post(f"/hooks/{platform}/", b"{}", content_type="application/json"),
    ):
        assert (response.status_code, response.json()) == (
            404,
            {"error": "this platform sends no webhooks"},
        )
    assert WebhookEvent.objects.count() == 0
