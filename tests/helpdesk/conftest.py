"""Fixtures of the care core: a brand's sandbox account, inbound items, fake platforms,
and a delivery queue that captures what post_reply schedules."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone

from helpdesk import tasks
from helpdesk.models import Conversation, Message
from helpdesk.services.inbound import InboundResult, record_inbound_message
from social import connectors
from social.connectors.base import Author, InboundItem
from social.crypto import encrypt_credentials
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.fakes import FakeConnector, FakeMeta, FakeX

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def fake_platforms() -> Iterator[type[FakeConnector]]:
    fakes = (FakeConnector, FakeX, FakeMeta)
    previous = {
        fake.platform: connectors._REGISTRY.get(fake.platform) for fake in fakes
    }
    for fake in fakes:
        fake.reset()
        connectors.register_connector(fake)
    yield FakeConnector
    # Put back only what the fakes replaced: connectors registered meanwhile (a
    # module imported on first use registers once per process) must stay.
    for platform, real in previous.items():
        if real is None:
            connectors._REGISTRY.pop(platform, None)
        else:
            connectors._REGISTRY[platform] = real


@dataclass
class DeliveryQueue:
    """What post_reply enqueued: (tenant_id, message_id) with the eta."""

    calls: list[tuple[tuple[int, int], datetime | None]] = field(default_factory=list)

    def run_due(self, *, task_id: str | None = None) -> list[Any]:
        """Run every queued delivery as if its hold were over; returns the results."""
        calls, self.calls = self.calls, []
        results = []
        for (tenant_id, message_id), _eta in calls:
            with tenant_context(tenant_id):
                Message.objects.filter(pk=message_id).update(send_after=timezone.now())
            result = tasks.deliver_message.apply(
                args=(tenant_id, message_id), task_id=task_id, throw=False
            )
            results.append(result.result)
        return results


# Autouse: eager Celery would run a delivery the moment it is scheduled, hold or not;
# tests run the queued deliveries explicitly instead.
@pytest.fixture(autouse=True)
def delivery_queue(monkeypatch: pytest.MonkeyPatch) -> DeliveryQueue:
    queue = DeliveryQueue()

    def capture(
        args: tuple[int, int], eta: datetime | None = None, **kwargs: Any
    ) -> None:
        queue.calls.append((tuple(args), eta))  # type: ignore[arg-type]

    monkeypatch.setattr(tasks.deliver_message, "apply_async", capture)
    return queue


def make_account(
    tenant: Tenant, *, platform: str = "sandbox", handle: str = "acmeair"
) -> SocialAccount:
    with tenant_context(tenant):
        brand = Brand.objects.order_by("id")[0]
        return SocialAccount.objects.create(
            tenant=tenant,
            brand=brand,
            platform=platform,
            external_id=f"acct-{next(_ids)}",
            handle=handle,
            credentials=encrypt_credentials(tenant.pk, {"access_token": "t"}),
        )


@pytest.fixture
def account(tenant: Tenant) -> SocialAccount:
    return make_account(tenant)


def item(
    *,
    text: str = "My flight is delayed again, what is going on?",
    author: str = "cust-1",
    handle: str = "jo",
    followers: int = 50,
    visibility: str = "public",
    external_id: str | None = None,
    thread: str = "",
    mentions: bool = True,
    platform: str = "sandbox",
    kind: str = "post",
    created_at: datetime | None = None,
) -> InboundItem:
    ext = external_id or f"in-{next(_ids)}"
    return InboundItem(
        platform=platform,
        external_id=ext,
        author=Author(
            external_id=author,
            handle=handle,
            display_name=handle.title(),
            followers=followers,
        ),
        text=text,
        created_at=created_at or timezone.now(),
        visibility=visibility,
        kind=kind if visibility == "public" else "direct_message",
        thread_ref=thread or ext,
        mentions_account=mentions and visibility == "public",
    )


def receive(
    account: SocialAccount, inbound: InboundItem, **kwargs: Any
) -> InboundResult:
    with tenant_context(account.tenant_id):
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account.pk
        )
        return record_inbound_message(account, inbound, **kwargs)


def member(tenant: Tenant, user: User) -> Membership:
    return membership_of(tenant, user)


def reload(conversation: Conversation) -> Conversation:
    with tenant_context(conversation.tenant_id):
        return Conversation.objects.select_related("brand").get(pk=conversation.pk)
