"""Conversations with an SLA clock set directly on their fields, for the breach,
digest and inbox-state tests (the clock's own rules are tested with the SLA engine).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from helpdesk.models import Contact, Conversation
from tenants.context import tenant_context
from tenants.models import Brand, Tenant

# A Monday morning; every clock below counts calendar time from here.
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
HOUR = 3600


def make_clocked(
    tenant: Tenant,
    *,
    name: str = "Jo Martin",
    started: datetime | None = T0,
    target: int = HOUR,
    kind: str = "first",
    lane: str = "normal",
    status: str = "open",
    brand: Brand | None = None,
    **fields: Any,
) -> Conversation:
    """A conversation whose response clock started at `started` with `target`
    seconds (due at started + target, due soon from 80% of it); no clock when
    `started` is None."""
    clock: dict[str, Any] = {}
    if started is not None:
        clock = {
            "sla_kind": kind,
            "sla_lane": lane,
            "sla_started_at": started,
            "sla_run_started_at": started,
            "sla_target_seconds": target,
            "sla_due_at": started + timedelta(seconds=target),
            "sla_due_soon_at": started + timedelta(seconds=target * 8 // 10),
            "queue_at": started + timedelta(seconds=target),
            "first_customer_message_at": started,
            "last_customer_message_at": started,
        }
    with tenant_context(tenant):
        brand = brand or Brand.objects.order_by("id")[0]
        contact = Contact.objects.create(tenant=tenant, display_name=name)
        return Conversation.objects.create(
            tenant=tenant,
            brand=brand,
            contact=contact,
            platform="sandbox",
            origin="mention",
            status=status,
            preview=f"{name} needs help with a delayed flight",
            **(clock | fields),
        )


def restart_clock(
    conversation: Conversation, *, started: datetime, target: int = HOUR
) -> None:
    """A new (next-response) clock from `started`, as after an answer and a reply."""
    with tenant_context(conversation.tenant_id):
        Conversation.objects.filter(pk=conversation.pk).update(
            sla_kind="next",
            sla_started_at=started,
            sla_run_started_at=started,
            sla_target_seconds=target,
            sla_due_at=started + timedelta(seconds=target),
            sla_due_soon_at=started + timedelta(seconds=target * 8 // 10),
            sla_breached_at=None,
        )


def fresh(conversation: Conversation) -> Conversation:
    with tenant_context(conversation.tenant_id):
        return Conversation.objects.get(pk=conversation.pk)
