"""Helpers of the SLA clock and care fact tests: fixed instants in the brand's
default week (Mon-Fri 09:00-17:00 UTC), customer messages and replies written at
an exact moment (timezone.now pinned with time_machine), and the recorded facts."""

from datetime import UTC, datetime
from typing import Any

import time_machine

from helpdesk.models import CareFact, Conversation, Message
from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, SlaPolicy, Tenant, User
from tests.helpdesk.conftest import item, member, receive

NEUTRAL = "Where is my bag?"
ANGRY = "Lost my bag, terrible and rude service"
# Fields of a fact the tests compare, in this order.
FACT_FIELDS = (
    "kind",
    "started_at",
    "at",
    "raw_seconds",
    "business_seconds",
    "target_seconds",
    "breached",
    "off_hours",
    "visibility",
    "lane",
    "agent_id",
    "reason",
)


def nov(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in November 2026 (the 23rd is a Monday, the 27th a Friday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def write(
    account: SocialAccount,
    when: datetime,
    *,
    text: str = NEUTRAL,
    thread: str = "root",
    **fields: Any,
) -> Conversation:
    """A customer message in `thread`, written and received at `when`."""
    with time_machine.travel(when, tick=False):
        result = receive(
            account,
            item(created_at=when, text=text, thread=thread, **fields),
        )
    return result.conversation


def answer(
    tenant: Tenant,
    user: User,
    conversation: Conversation,
    when: datetime,
    *,
    text: str = "Sorry about that, checking now.",
    **fields: Any,
) -> Message:
    """The agent's reply, queued at `when`."""
    with time_machine.travel(when, tick=False), tenant_context(tenant):
        return post_reply(
            conversation, membership=member(tenant, user), text=text, **fields
        ).message


def reload(conversation: Conversation) -> Conversation:
    with tenant_context(conversation.tenant_id):
        return Conversation.objects.select_related("brand").get(pk=conversation.pk)


def facts(tenant: Tenant, *kinds: str) -> list[tuple[Any, ...]]:
    """The tenant's facts (of `kinds`, else all but `opened`) as FACT_FIELDS tuples."""
    with tenant_context(tenant):
        rows = CareFact.objects.order_by("id")
        rows = rows.filter(kind__in=kinds) if kinds else rows.exclude(kind="opened")
        return list(rows.values_list(*FACT_FIELDS))


def set_policy(tenant: Tenant, *, brand: bool = True, **fields: Any) -> SlaPolicy:
    """The brand's SLA policy (or, brand=False, the workspace fallback)."""
    with tenant_context(tenant):
        owner = Brand.objects.order_by("id")[0] if brand else None
        return SlaPolicy.objects.create(tenant=tenant, brand=owner, **fields)


def clock_of(conversation: Conversation) -> tuple[Any, ...]:
    """The clock fields: kind, lane, started, run started, used, target, due, soon."""
    c = reload(conversation)
    return (
        c.sla_kind,
        c.sla_lane,
        c.sla_started_at,
        c.sla_run_started_at,
        c.sla_used_seconds,
        c.sla_target_seconds,
        c.sla_due_at,
        c.sla_due_soon_at,
    )


CLEARED = ("", "normal", None, None, 0, None, None, None)
