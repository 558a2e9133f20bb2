"""API test clients: the browser session and bearer tokens (shared by test_*_api.py)."""

from typing import Any

from rest_framework.test import APIClient

from social.api_channel import create_api_channel
from social.models import SocialAccount
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of

# Open around the clock, every day: no away replies, the clock always running.
ALL_WEEK = {
    day: [["00:00", "24:00"]]
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


def open_api_channel(tenant: Tenant, owner: User) -> SocialAccount:
    """An API channel of the workspace's brand, set up as the benchmarks' is: open
    all week and no undo hold (replies are due at once)."""
    with tenant_context(tenant):
        Brand.objects.update(business_hours=ALL_WEEK, send_hold_seconds=0)
        return create_api_channel(
            membership_of(tenant, owner), brand=Brand.objects.get(), name="Chat"
        )


def session(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def token_client(tenant: Tenant, user: User, scope: str = "write") -> APIClient:
    with tenant_context(tenant):
        _, raw = create_api_token(membership_of(tenant, user), name="ci", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def base(tenant: Tenant) -> str:
    return f"/api/v1/t/{tenant.slug}"


def push(
    client: APIClient,
    tenant: Tenant,
    channel: SocialAccount,
    n: int,
    author: int | None = None,
) -> Any:
    """An API-channel push of message `n` (by customer `author`, else customer n)."""
    who = n if author is None else author
    return client.post(
        f"{base(tenant)}/channels/{channel.pk}/messages/",
        {
            "external_id": f"m-{n}",
            "text": f"Order {n} has not arrived yet, can you check?",
            "author": {"id": f"cust-{who}", "name": f"Customer {who}"},
        },
        format="json",
    )


FOREIGN_CALLERS = ("outsider_session", "foreign_token")


def foreign_client(caller: str, other_tenant: Tenant, outsider: User) -> APIClient:
    """Someone of another workspace: its owner's browser session, or an admin-scope
    token of that workspace (both must get 404 on this workspace's URLs)."""
    if caller == "outsider_session":
        return session(outsider)
    return token_client(other_tenant, outsider, "admin")
