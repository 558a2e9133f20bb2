"""Care facts (R9): written once, when they happen, with the dimensions reports
group by, and rolled up in the same transaction."""

from typing import Any

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db.models import Sum

from helpdesk.models import CareFact, ReportRollup
from helpdesk.services.lifecycle import resolve_conversation
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.clock_support import (
    ANGRY,
    CLEARED,
    answer,
    clock_of,
    facts,
    nov,
    reload,
    set_policy,
    write,
)
from tests.helpdesk.conftest import make_account, member

pytestmark = pytest.mark.django_db

WED_10 = nov(25, 10)


def dims(tenant: Tenant) -> list[tuple[Any, ...]]:
    with tenant_context(tenant):
        return list(
            CareFact.objects.order_by("id").values_list(
                "kind",
                "brand__slug",
                "account_id",
                "platform",
                "origin",
                "sentiment",
                "follower_band",
            )
        )


def rollup_totals(tenant: Tenant, *counters: str) -> dict[str, int | None]:
    with tenant_context(tenant):
        return ReportRollup.objects.aggregate(**{c: Sum(c) for c in counters})


def test_opening_records_when_the_demand_began_and_whether_it_was_off_hours(
    tenant: Tenant, account: SocialAccount
) -> None:
    write(account, WED_10)
    write(account, nov(28, 12), thread="weekend")
    assert facts(tenant, "opened") == [
        (
            "opened",
            WED_10,
            WED_10,
            None,
            None,
            None,
            False,
            False,
            "",
            "normal",
            None,
            "",
        ),
        (
            "opened",
            nov(28, 12),
            nov(28, 12),
            None,
            None,
            None,
            False,
            True,
            "",
            "normal",
            None,
            "",
        ),
    ]
    assert rollup_totals(tenant, "inbound", "opened", "off_hours_opened") == {
        "inbound": 2,
        "opened": 2,
        "off_hours_opened": 1,
    }


def test_facts_carry_the_conversations_dimensions(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    x_account = make_account(tenant, platform="x", handle="acme_x")
    big = write(
        x_account, WED_10, text=ANGRY, followers=20_000, thread="x-1", platform="x"
    )
    mid = write(account, WED_10, followers=5_000, visibility="private", thread="dm-1")
    answer(tenant, agent, big, nov(25, 10, 5))
    answer(tenant, agent, mid, nov(25, 10, 6))
    slug = reload(big).brand.slug
    assert dims(tenant) == [
        ("opened", slug, x_account.pk, "x", "mention", "negative", "large"),
        ("opened", slug, account.pk, "sandbox", "direct_message", "neutral", "medium"),
        ("first_response", slug, x_account.pk, "x", "mention", "negative", "large"),
        (
            "first_response",
            slug,
            account.pk,
            "sandbox",
            "direct_message",
            "neutral",
            "medium",
        ),
    ]
    assert rollup_totals(
        tenant, "answered", "answered_public", "answered_private", "public_replies"
    ) == {
        "answered": 2,
        "answered_public": 1,
        "answered_private": 1,
        "public_replies": 1,
    }


def test_resolving_records_the_resolution_in_business_time_and_clears_the_clock(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_policy(tenant, resolution_minutes=120)
    conversation = write(account, nov(25, 16))
    assert reload(conversation).resolution_due_at == nov(26, 10)
    with time_machine.travel(nov(26, 10, 30), tick=False), tenant_context(tenant):
        resolve_conversation(conversation, membership=member(tenant, agent))
    assert facts(tenant) == [
        (
            "resolution",
            nov(25, 16),
            nov(26, 10, 30),
            18 * 3600 + 1800,
            3600 + 5400,
            7200,
            True,
            False,
            "",
            "normal",
            agent.pk,
            "",
        )
    ]
    fresh = reload(conversation)
    assert (fresh.status, fresh.resolved_at, fresh.queue_at) == (
        "resolved",
        nov(26, 10, 30),
        None,
    )
    assert clock_of(conversation) == CLEARED
    assert rollup_totals(tenant, "resolved", "resolution_breached") == {
        "resolved": 1,
        "resolution_breached": 1,
    }


def test_resolving_again_records_nothing_more(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    for minute in (10, 20):
        with (
            time_machine.travel(nov(25, 10, minute), tick=False),
            tenant_context(tenant),
        ):
            resolve_conversation(conversation, membership=member(tenant, agent))
    [fact] = facts(tenant)
    assert fact[:7] == ("resolution", WED_10, nov(25, 10, 10), 600, 600, None, False)


def test_a_viewer_cannot_resolve_and_no_fact_is_written(
    tenant: Tenant, viewer: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    with tenant_context(tenant), pytest.raises(PermissionDenied):
        resolve_conversation(conversation, membership=member(tenant, viewer))
    assert facts(tenant) == []
    assert clock_of(conversation)[0] == "first"


def test_a_customer_message_after_resolution_starts_a_next_response_clock(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    answer(tenant, agent, conversation, nov(25, 10, 5))
    with time_machine.travel(nov(25, 10, 10), tick=False), tenant_context(tenant):
        resolve_conversation(conversation, membership=member(tenant, agent))
    write(account, nov(25, 11), external_id="reopened")
    assert reload(conversation).status == "open"
    assert clock_of(conversation)[:2] == ("next", "normal")
    assert clock_of(conversation)[6] == nov(25, 12)
