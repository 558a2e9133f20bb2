"""The API channel: a custom source pushes messages in; replies go out as webhooks."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from helpdesk.models import Conversation, Message
from social.models import SocialAccount
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(tenant: Tenant, user: User, scope: str) -> APIClient:
    with tenant_context(tenant):
        _, raw = create_api_token(membership_of(tenant, user), name="src", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def open_channel(tenant: Tenant, owner: User) -> int:
    with tenant_context(tenant):
        brand_id = Brand.objects.get().pk
    response = client_for(tenant, owner, "admin").post(
        f"/api/v1/t/{tenant.slug}/channels/",
        {"brand_id": brand_id, "name": "Shop chat"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "Shop chat"
    return int(response.json()["id"])


def push(client: APIClient, tenant: Tenant, channel: int, **fields: Any) -> Any:
    body = {
        "external_id": "chat-1",
        "text": "My order #1234 never arrived",
        "author": {"id": "cust-9", "handle": "sam", "name": "Sam"},
        **fields,
    }
    return client.post(
        f"/api/v1/t/{tenant.slug}/channels/{channel}/messages/", body, format="json"
    )


def test_a_pushed_message_opens_a_conversation_once(
    tenant: Tenant, owner: User, agent: User
) -> None:
    channel = open_channel(tenant, owner)
    client = client_for(tenant, agent, "write")

    first = push(client, tenant, channel)
    replay = push(client, tenant, channel)

    assert first.status_code == 201
    assert first.json()["created"] is True
    assert replay.status_code == 200
    assert replay.json() == {**first.json(), "created": False}
    with tenant_context(tenant):
        conversation = Conversation.objects.get()
        assert (conversation.platform, conversation.origin) == ("api", "direct_message")
        assert list(Message.objects.values_list("text", flat=True)) == [
            "My order #1234 never arrived"
        ]


def test_a_second_private_message_joins_the_same_conversation(
    tenant: Tenant, owner: User, agent: User
) -> None:
    channel = open_channel(tenant, owner)
    client = client_for(tenant, agent, "write")
    first = push(client, tenant, channel).json()
    second = push(client, tenant, channel, external_id="chat-2", text="Any news?")
    assert second.status_code == 201
    assert second.json()["conversation_id"] == first["conversation_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"text": ""}, "text"),
        ({"author": {}}, "author"),
        ({"author": "sam"}, "author"),
        ({"author": {"id": "x", "followers": -1}}, "author"),
        ({"visibility": "secret"}, "visibility"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/" + "p" * 181}, "url"),
    ],
)
def test_malformed_pushes_name_the_field_and_record_nothing(
    tenant: Tenant, owner: User, agent: User, body: dict[str, Any], field: str
) -> None:
    channel = open_channel(tenant, owner)
    response = push(client_for(tenant, agent, "write"), tenant, channel, **body)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    with tenant_context(tenant):
        assert Message.objects.count() == 0


def test_a_read_token_cannot_push(tenant: Tenant, owner: User, agent: User) -> None:
    channel = open_channel(tenant, owner)
    response = push(client_for(tenant, agent, "read"), tenant, channel)
    assert response.status_code == 403
    with tenant_context(tenant):
        assert Message.objects.count() == 0


def test_agents_cannot_open_channels(tenant: Tenant, agent: User) -> None:
    with tenant_context(tenant):
        brand_id = Brand.objects.get().pk
    response = client_for(tenant, agent, "write").post(
        f"/api/v1/t/{tenant.slug}/channels/",
        {"brand_id": brand_id, "name": "x"},
        format="json",
    )
    assert response.status_code == 403
    with tenant_context(tenant):
        assert SocialAccount.objects.count() == 0


def test_another_workspaces_channel_or_brand_is_refused(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User
) -> None:
    theirs = open_channel(other_tenant, outsider)
    with tenant_context(other_tenant):
        their_brand = Brand.objects.get().pk
    ours = client_for(tenant, owner, "admin")
    pushed = push(ours, tenant, theirs)
    assert pushed.status_code == 404
    opened = ours.post(
        f"/api/v1/t/{tenant.slug}/channels/",
        {"brand_id": their_brand, "name": "x"},
        format="json",
    )
    assert opened.status_code == 400
    assert list(opened.json()["fields"]) == ["brand_id"]
    with tenant_context(other_tenant):
        assert Message.objects.count() == 0
    with tenant_context(tenant):
        assert SocialAccount.objects.count() == 0
