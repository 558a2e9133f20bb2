"""The reply's row lock says whether the workspace has an active outbound webhook
endpoint, so a reply in a workspace without one skips the endpoint cache; with
one, its events are queued as before."""

from typing import Any

import pytest

from helpdesk.models import WebhookDelivery
from helpdesk.services import webhook_outbox
from helpdesk.services.inbound import InboundResult
from helpdesk.services.replies import post_reply
from helpdesk.services.reply_lock import lock_conversation_for_reply
from helpdesk.services.webhooks import disable_webhook_endpoint
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, member, receive
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/earshot"


@pytest.fixture(autouse=True)
def _fixtures(fake_dns: FakeDns, webhook_queue: WebhookQueue) -> None:
    """No real DNS, and deliveries are captured rather than sent."""


@pytest.fixture
def thread(account: SocialAccount) -> InboundResult:
    return receive(account, item(text="My flight AA12 is delayed, any news?"))


def reply(tenant: Tenant, user: User, thread: InboundResult) -> None:
    with tenant_context(tenant):
        post_reply(
            thread.conversation,
            membership=member(tenant, user),
            text="Sorry about that, checking now.",
        )


def deliveries(tenant: Tenant) -> list[tuple[str, int]]:
    with tenant_context(tenant):
        return list(
            WebhookDelivery.objects.order_by("id").values_list(
                "event_type", "endpoint_id"
            )
        )


def has_endpoints(tenant: Tenant, thread: InboundResult) -> Any:
    with tenant_context(tenant):
        locked: Any = lock_conversation_for_reply(thread.conversation.pk)
        return locked.has_webhook_endpoints


def test_without_endpoints_a_reply_reads_no_endpoint_cache(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        webhook_outbox, "_cached", lambda tenant_id: pytest.fail("cache read")
    )

    reply(tenant, agent, thread)

    assert has_endpoints(tenant, thread) is False
    assert deliveries(tenant) == []


def test_with_an_endpoint_a_reply_queues_its_events(
    tenant: Tenant, owner: User, agent: User, thread: InboundResult
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    before = deliveries(tenant)

    reply(tenant, agent, thread)

    assert has_endpoints(tenant, thread) is True
    assert deliveries(tenant)[len(before) :] == [
        ("message.created", endpoint.pk),
        ("conversation.updated", endpoint.pk),
    ]


def test_a_disabled_endpoint_counts_as_none(
    tenant: Tenant, owner: User, agent: User, thread: InboundResult
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        disable_webhook_endpoint(membership_of(tenant, owner), endpoint)
    before = deliveries(tenant)

    reply(tenant, agent, thread)

    assert has_endpoints(tenant, thread) is False
    assert deliveries(tenant) == before


def test_another_workspaces_endpoint_counts_as_none(
    tenant: Tenant,
    other_tenant: Tenant,
    outsider: User,
    agent: User,
    thread: InboundResult,
) -> None:
    add_endpoint(other_tenant, outsider, URL)

    reply(tenant, agent, thread)

    assert has_endpoints(tenant, thread) is False
    assert deliveries(tenant) == []
    assert deliveries(other_tenant) == []
