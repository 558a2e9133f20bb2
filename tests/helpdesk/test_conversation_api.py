"""The care core's REST API: conversations, replies, holds, notes; tokens and scopes.

Requests go through the whole stack (middleware, DRF, services). Denials also
assert that nothing changed.
"""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from helpdesk.models import Conversation, ConversationTag, Message, Note
from helpdesk.services.inbound import InboundResult
from social.models import SocialAccount
from tenants.api_auth import ApiRateThrottle
from tenants.api_tokens import create_api_token, revoke_api_token
from tenants.context import tenant_context
from tenants.models import ApiToken, Tenant, User
from tests.api_clients import base, session, token_client
from tests.factories import membership_of
from tests.helpdesk.conftest import DeliveryQueue, item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)


def outbound(tenant: Tenant) -> list[tuple[str, str, str]]:
    with tenant_context(tenant):
        return list(
            Message.objects.filter(direction="out")
            .order_by("id")
            .values_list("visibility", "delivery_status", "text")
        )


@pytest.fixture
def thread(account: SocialAccount) -> InboundResult:
    return receive(account, item(text="My flight AA12 is delayed, any news?"))


def test_a_token_lists_the_inbox_in_queue_order(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    first = receive(account, item(text="Where is my bag?", followers=10))
    second = receive(account, item(text="Refund please", author="cust-2"))
    client = token_client(tenant, agent, "read")

    response = client.get(f"{base(tenant)}/conversations/")

    assert response.status_code == 200
    body = response.json()
    ids = [row["id"] for row in body["results"]]
    assert sorted(ids) == sorted([first.conversation.pk, second.conversation.pk])
    assert body["next"] is None
    row = next(r for r in body["results"] if r["id"] == first.conversation.pk)
    assert row["preview"] == "Where is my bag?"
    assert row["status"] == "open"
    assert row["public_reply_count"] == 0
    assert row["public_reply_limit"] == 2
    assert row["brand"]["name"] == "Acme Air"
    assert row["tags"] == []
    with tenant_context(tenant):
        assert ApiToken.objects.get().last_used_at is not None


def test_the_cursor_walks_every_page_once(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    made = [
        receive(account, item(text=f"Question {n}", author=f"c{n}")).conversation.pk
        for n in range(5)
    ]
    client = session(agent)
    seen: list[int] = []
    url: str | None = f"{base(tenant)}/conversations/?page_size=2"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [row["id"] for row in response.json()["results"]]
        url = response.json()["next"]
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=not-a-cursor", "cursor"),
        ("page_size=0", "page_size"),
        ("page_size=abc", "page_size"),
        ("status=lost", "status"),
        ("assignee=someone", "assignee"),
    ],
)
def test_bad_list_parameters_name_the_field(
    tenant: Tenant, agent: User, query: str, field: str
) -> None:
    response = session(agent).get(f"{base(tenant)}/conversations/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == [field]


def test_assignee_filters(tenant: Tenant, agent: User, account: SocialAccount) -> None:
    mine = receive(account, item(author="c1")).conversation
    other = receive(account, item(author="c2")).conversation
    client = session(agent)
    response = client.patch(
        f"{base(tenant)}/conversations/{mine.pk}/",
        {"assignee_id": agent.pk},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["assignee"] == {"id": agent.pk, "name": "Andy"}

    ids_me = [
        r["id"]
        for r in client.get(f"{base(tenant)}/conversations/?assignee=me").json()[
            "results"
        ]
    ]
    ids_none = [
        r["id"]
        for r in client.get(f"{base(tenant)}/conversations/?assignee=none").json()[
            "results"
        ]
    ]
    assert ids_me == [mine.pk]
    assert other.pk in ids_none
    assert mine.pk not in ids_none


def test_a_reply_is_held_and_queued(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    delivery_queue: DeliveryQueue,
) -> None:
    conversation = thread.conversation
    response = session(agent).post(
        f"{base(tenant)}/conversations/{conversation.pk}/messages/",
        {"text": "Sorry Jo, checking AA12 now."},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["visibility"] == "public"
    assert body["delivery_status"] == "scheduled"
    assert body["direction"] == "out"
    assert body["author"] == {"type": "agent", "id": agent.pk, "name": "Andy"}
    assert body["scheduled_for"] is not None
    assert len(delivery_queue.calls) == 1
    assert delivery_queue.calls[0][0] == (tenant.pk, body["id"])


def test_a_near_duplicate_needs_the_confirm_field(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    first = receive(account, item(author="c1")).conversation
    second = receive(account, item(author="c2")).conversation
    client = session(agent)
    text = "So sorry about the delay, our team is looking into it right now."
    url = f"{base(tenant)}/conversations/{{}}/messages/"
    assert (
        client.post(url.format(first.pk), {"text": text}, format="json").status_code
        == 201
    )

    warned = client.post(url.format(second.pk), {"text": text}, format="json")

    assert warned.status_code == 409
    body = warned.json()
    assert body["code"] == "needs_confirmation"
    assert list(body["details"]["warnings"]) == ["near_duplicate"]
    assert len(outbound(tenant)) == 1

    confirmed = client.post(
        url.format(second.pk),
        {"text": text, "confirm": ["near_duplicate"]},
        format="json",
    )
    assert confirmed.status_code == 201
    assert len(outbound(tenant)) == 2


def test_the_third_public_reply_is_refused_with_the_rule(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    delivery_queue: DeliveryQueue,
) -> None:
    client = session(agent)
    url = f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/"
    for text in ("First answer about AA12.", "Second, a different update on it."):
        assert client.post(url, {"text": text}, format="json").status_code == 201
        delivery_queue.run_due()
    before = outbound(tenant)
    assert [status for _, status, _ in before] == ["sent", "sent"]

    refused = client.post(url, {"text": "A third public answer."}, format="json")

    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "public_reply_limit"
    assert body["message"]
    assert outbound(tenant) == before


def test_reply_input_errors_are_field_messages(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    url = f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/"
    client = session(agent)
    for payload, field in (
        ({}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "hi", "visibility": "loud"}, "visibility"),
        ({"text": "hi", "confirm": ["everything"]}, "confirm"),
        ({"text": "hi", "seen_seq": -1}, "seen_seq"),
    ):
        response = client.post(url, payload, format="json")
        assert response.status_code == 400, payload
        assert field in response.json()["fields"], (payload, response.json())
    not_json = client.post(url, "text=hi", content_type="text/plain")
    assert not_json.status_code == 415
    assert not_json.json()["code"] == "unsupported_media_type"
    assert outbound(tenant) == []


def test_undo_and_edit_during_the_hold(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    client = session(agent)
    created = client.post(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/",
        {"text": "Checking now"},
        format="json",
    ).json()
    edited = client.patch(
        f"{base(tenant)}/messages/{created['id']}/",
        {"text": "Checking AA12 now"},
        format="json",
    )
    assert edited.status_code == 200
    assert edited.json()["text"].startswith("Checking AA12 now")

    cancelled = client.post(f"{base(tenant)}/messages/{created['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["delivery_status"] == "cancelled"

    again = client.post(f"{base(tenant)}/messages/{created['id']}/cancel/")
    assert again.status_code == 409
    assert again.json()["code"] == "message_not_editable"


def test_customer_messages_cannot_be_cancelled(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    response = session(agent).post(
        f"{base(tenant)}/messages/{thread.message.pk}/cancel/"
    )
    assert response.status_code == 404
    with tenant_context(tenant):
        assert Message.objects.get(pk=thread.message.pk).delivery_status == (
            thread.message.delivery_status
        )


def test_patch_changes_status_priority_and_tags(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    url = f"{base(tenant)}/conversations/{thread.conversation.pk}/"
    response = session(agent).patch(
        url,
        {"status": "resolved", "priority": 7, "tags": ["Delay", "baggage"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["priority"], body["tags"]) == (
        "resolved",
        7,
        ["baggage", "delay"],
    )


def test_snoozing_needs_a_time(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    url = f"{base(tenant)}/conversations/{thread.conversation.pk}/"
    client = session(agent)
    refused = client.patch(url, {"status": "snoozed"}, format="json")
    assert refused.status_code == 409
    assert list(refused.json()["fields"]) == ["snooze_until"]
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    snoozed = client.patch(
        url, {"status": "snoozed", "snooze_until": later}, format="json"
    )
    assert snoozed.status_code == 200
    assert snoozed.json()["status"] == "snoozed"


def test_another_tenants_member_cannot_be_injected_as_assignee(
    tenant: Tenant,
    agent: User,
    outsider: User,
    other_tenant: Tenant,
    thread: InboundResult,
) -> None:
    priority = thread.conversation.priority
    response = session(agent).patch(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/",
        {"assignee_id": outsider.pk, "priority": 9},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["assignee_id"]
    with tenant_context(tenant):
        conversation = Conversation.objects.get(pk=thread.conversation.pk)
    assert (conversation.assignee_id, conversation.priority) == (None, priority)


def test_a_refused_part_of_a_patch_changes_nothing(
    tenant: Tenant, agent: User, viewer: User, thread: InboundResult
) -> None:
    response = session(agent).patch(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/",
        {"assignee_id": viewer.pk, "tags": ["vip"]},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    with tenant_context(tenant):
        assert ConversationTag.objects.count() == 0


def test_notes(tenant: Tenant, agent: User, thread: InboundResult) -> None:
    url = f"{base(tenant)}/conversations/{thread.conversation.pk}/notes/"
    client = session(agent)
    created = client.post(url, {"text": "VIP, flies weekly"}, format="json")
    assert created.status_code == 201
    assert created.json()["text"] == "VIP, flies weekly"
    assert created.json()["author"] == {"id": agent.pk, "name": "Andy"}
    listed = client.get(url).json()
    assert [n["text"] for n in listed] == ["VIP, flies weekly"]


def test_move_to_private_queues_the_invitation(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    response = session(agent).post(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/move-private/",
        {"public_text": "Please send us a DM with your booking code."},
        format="json",
    )
    assert response.status_code == 201, response.json()
    messages = response.json()["messages"]
    assert [(m["visibility"], m["kind"]) for m in messages] == [
        ("public", "private_invite")
    ]
    detail = session(agent).get(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/"
    )
    assert detail.json()["channel_state"] == "private"


# --- authentication, scopes, tenancy -------------------------------------------


def test_no_credentials_is_401(tenant: Tenant) -> None:
    response = APIClient().get(f"{base(tenant)}/conversations/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_read_token_cannot_reply(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    client = token_client(tenant, agent, "read")
    response = client.post(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/",
        {"text": "hello"},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"
    assert outbound(tenant) == []


def test_a_viewer_cannot_reply(
    tenant: Tenant, viewer: User, thread: InboundResult
) -> None:
    response = session(viewer).post(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/",
        {"text": "hello"},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert outbound(tenant) == []


def test_a_token_on_another_workspaces_url_is_404(
    tenant: Tenant,
    agent: User,
    other_tenant: Tenant,
    outsider: User,
    thread: InboundResult,
) -> None:
    globex = token_client(other_tenant, outsider, "write")
    for method, path, payload in (
        ("get", f"{base(tenant)}/conversations/", None),
        ("get", f"{base(tenant)}/conversations/{thread.conversation.pk}/", None),
        (
            "post",
            f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/",
            {"text": "hi"},
        ),
    ):
        response = getattr(globex, method)(path, payload, format="json")
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
        assert b"Acme" not in response.content
    assert outbound(tenant) == []


def test_a_token_with_another_workspaces_ids_is_404(
    tenant: Tenant,
    agent: User,
    other_tenant: Tenant,
    thread: InboundResult,
) -> None:
    globex_account = make_account(other_tenant)
    theirs = receive(globex_account, item(text="Globex customer")).conversation
    priority = theirs.priority
    client = token_client(tenant, agent, "write")
    for method, path in (
        ("get", f"{base(tenant)}/conversations/{theirs.pk}/"),
        ("patch", f"{base(tenant)}/conversations/{theirs.pk}/"),
        ("post", f"{base(tenant)}/conversations/{theirs.pk}/messages/"),
        ("post", f"{base(tenant)}/conversations/{theirs.pk}/notes/"),
    ):
        response = getattr(client, method)(
            path, {"text": "x", "priority": 3}, format="json"
        )
        assert response.status_code == 404, path
        assert b"Globex" not in response.content
    with tenant_context(other_tenant):
        assert Message.objects.filter(direction="out").count() == 0
        assert Note.objects.count() == 0
        assert Conversation.objects.get(pk=theirs.pk).priority == priority


def test_a_revoked_token_stops_working(tenant: Tenant, agent: User) -> None:
    with tenant_context(tenant):
        membership = membership_of(tenant, agent)
        token, raw = create_api_token(membership, name="x", scope="read")
        revoke_api_token(membership, token=token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(f"{base(tenant)}/conversations/").status_code == 404
    client.credentials(HTTP_AUTHORIZATION="Bearer esk_nonsense")
    assert client.get(f"{base(tenant)}/conversations/").status_code == 404


def test_a_demoted_members_token_loses_write(
    tenant: Tenant, agent: User, owner: User, thread: InboundResult
) -> None:
    client = token_client(tenant, agent, "write")
    with tenant_context(tenant):
        membership = membership_of(tenant, agent)
        membership.role = "viewer"
        membership.save(update_fields=["role"])
    response = client.post(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/",
        {"text": "hello"},
        format="json",
    )
    assert response.status_code == 403
    assert outbound(tenant) == []


def test_rate_limit_answers_429_with_retry_after(
    tenant: Tenant, agent: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ApiRateThrottle, "THROTTLE_RATES", {"api": "3/min"})
    client = token_client(tenant, agent, "read")
    codes = [client.get(f"{base(tenant)}/conversations/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get(f"{base(tenant)}/conversations/")
    assert limited.json()["code"] == "rate_limited"
    assert 0 < int(limited["Retry-After"]) <= 60


def test_the_schema_describes_the_api(tenant: Tenant, agent: User) -> None:
    response = session(agent).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/t/{tenant_slug}/conversations/" in schema["paths"]
