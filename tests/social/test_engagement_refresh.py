"""Reading engagement on a schedule (social.engagement) against the Sandbox network
over real HTTP: a customer's thread gains reposts and likes, the refresh reads
them and flags it spreading; the read keeps to the account's budget and a 429
pauses the account for its Retry-After."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from helpdesk.models import Conversation, Event
from social import sending
from social.connectors.base import SendLimit
from social.connectors.sandbox import SandboxConnector
from social.engagement import refresh_engagement
from social.models import PostEngagement, SocialAccount
from social.sandbox import network
from social.sandbox.models import Person
from social.tasks import refresh_engagement as refresh_task
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.social.test_sandbox import connect_through_oauth, live  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live"),
]


def conversations(tenant: Tenant) -> list[Conversation]:
    with tenant_context(tenant):
        return list(Conversation.objects.order_by("pk"))


def counts(tenant: Tenant) -> list[tuple[str, int, int, int, int]]:
    with tenant_context(tenant):
        return list(
            PostEngagement.objects.order_by("pk").values_list(
                "external_id", "reposts", "likes", "replies", "quotes"
            )
        )


def test_a_thread_that_gains_reposts_is_read_and_flagged_spreading(
    owner: User, tenant: Tenant, live_server: Any
) -> None:
    connect_through_oauth(owner, tenant, live_server.url)
    with tenant_context(tenant):
        Brand.objects.update(spreading_threshold=100)
    jo = Person.objects.create(handle="jo", name="Jo", followers=300)
    complaint, _ = network.create_post(jo, "@acmeair lost my bag, 3rd time!!")
    [conversation] = conversations(tenant)

    assert refresh_task.run(tenant.pk) == 1
    assert counts(tenant) == [(str(complaint.pk), 0, 0, 0, 0)]
    [read] = conversations(tenant)
    assert (read.engagement_total, read.spreading_since) == (0, None)
    assert read.engagement_next_at is not None
    assert read.engagement_read_at is not None
    assert read.engagement_next_at - read.engagement_read_at == timedelta(minutes=2)
    # Not due again yet: nothing is read.
    assert refresh_engagement(tenant) == 0

    network.create_post(jo, "anyone there??", in_reply_to=complaint)
    network.spread_post(complaint.pk, reposts=40, likes=120)
    with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=True):
        assert refresh_engagement(tenant) == 1

    assert counts(tenant) == [(str(complaint.pk), 40, 120, 1, 0)]
    [spreading] = conversations(tenant)
    assert spreading.engagement_total == 161
    assert spreading.engagement_per_hour > 100
    assert spreading.spreading_since is not None
    assert spreading.sla_lane == "urgent"
    with tenant_context(tenant):
        flips = [
            e.payload["changed"]
            for e in Event.objects.filter(type="conversation.updated")
            if "spreading_since" in e.payload["changed"]
        ]
    assert len(flips) == 1
    assert flips[0]["engagement_total"] == 161
    assert conversation.pk == spreading.pk


def test_reads_keep_to_the_accounts_budget(
    owner: User, tenant: Tenant, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_through_oauth(owner, tenant, live_server.url)
    for n in range(3):
        person = Person.objects.create(handle=f"customer{n}", name=f"Customer {n}")
        network.create_post(person, f"@acmeair where is my bag #{n}")
    monkeypatch.setattr(SandboxConnector, "engagement_batch", 1)
    monkeypatch.setattr(
        SandboxConnector, "engagement_limit", SendLimit(2, 60, "engagement")
    )

    assert refresh_engagement(tenant) == 2

    read = [c for c in conversations(tenant) if c.engagement_read_at is not None]
    unread = [c for c in conversations(tenant) if c.engagement_read_at is None]
    assert (len(read), len(unread)) == (2, 1)
    # The one left over is still due and read once the window turns.
    assert unread[0].engagement_next_at is None
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=True):
        assert refresh_engagement(tenant) == 1


def test_a_429_pauses_the_account_for_its_retry_after(
    owner: User, tenant: Tenant, live_server: Any
) -> None:
    account = connect_through_oauth(owner, tenant, live_server.url)
    jo = Person.objects.create(handle="jo", name="Jo")
    network.create_post(jo, "@acmeair hello?")

    with override_settings(SANDBOX_RATE_LIMIT_PER_MINUTE=0):
        assert refresh_engagement(tenant) == 0

    assert counts(tenant) == []
    wait = sending.pauses([account.pk])[account.pk]
    assert 0 < wait <= 60
    [postponed] = conversations(tenant)
    assert postponed.engagement_read_at is None
    assert postponed.engagement_next_at is not None
    with tenant_context(tenant):
        degraded = SocialAccount.objects.get(pk=account.pk).degraded_since
    assert degraded is None  # a refused read pauses; it does not mark degraded
    # While paused, even a due read makes no call.
    with tenant_context(tenant):
        Conversation.objects.update(engagement_next_at=None)
    assert refresh_engagement(tenant) == 0
    assert counts(tenant) == []


def test_private_and_resolved_conversations_are_not_read(
    owner: User, tenant: Tenant, live_server: Any
) -> None:
    connect_through_oauth(owner, tenant, live_server.url)
    jo = Person.objects.create(handle="jo", name="Jo")
    brand = Person.objects.get(handle="acmeair")
    network.send_message(jo, brand, "my booking ref is ABC123")
    network.create_post(jo, "@acmeair thanks, solved")
    with tenant_context(tenant):
        Conversation.objects.filter(origin="mention").update(status="resolved")

    assert refresh_engagement(tenant) == 0
    assert counts(tenant) == []
