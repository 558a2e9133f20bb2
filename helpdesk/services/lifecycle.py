"""Conversation status: open, pending, snoozed (until a time), resolved.

Status changes move the SLA clock (helpdesk.services.sla): resolving clears it and
records the resolution fact; pending pauses it when the brand pauses while
pending; reopening resumes a paused clock.
"""

from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from helpdesk import events
from helpdesk.exceptions import InvalidTransition
from helpdesk.models import Conversation
from helpdesk.services import sla
from tenants.access import require_role
from tenants.models import Membership, Tenant

Status = Conversation.Status
# Moves the clock for a status change: sets the conversation's clock fields and
# returns the changed ones.
ClockStep = Callable[[Conversation], sla.Changed]


def _transition(
    conversation: Conversation,
    membership: Membership,
    status: str,
    clock: ClockStep | None = None,
    **fields: object,
) -> Conversation:
    require_role(membership, Membership.Role.AGENT)
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("brand")
            .get(pk=conversation.pk)
        )
        moved = clock(locked) if clock is not None and locked.status != status else {}
        _apply(locked, status, fields, moved)
    return locked


def _apply(
    conversation: Conversation,
    status: str,
    fields: dict[str, object],
    moved: sla.Changed | None = None,
) -> dict[str, object]:
    changed: dict[str, object] = dict(moved or {})
    values = {"status": status, **fields}
    for name, value in values.items():
        if getattr(conversation, name) != value:
            setattr(conversation, name, value)
            changed[name] = value
    if changed:
        conversation.save(update_fields=[*values, *(moved or {})])
        events.emit(
            conversation.tenant_id,
            "conversation.updated",
            conversation_id=conversation.pk,
            brand_id=conversation.brand_id,
            changed=sla.jsonable(changed),
        )
    return changed


def resolve_conversation(
    conversation: Conversation, *, membership: Membership
) -> Conversation:
    """Mark resolved. A new customer message reopens it. Agents and above.

    Resolving an open conversation records the `resolution` care fact (by this
    agent) and clears its response clock, in the same transaction.
    """
    at = timezone.now()

    def clock(locked: Conversation) -> sla.Changed:
        _fact, changed = sla.record_resolution(locked, at=at, agent=membership.user)
        return changed

    return _transition(
        conversation,
        membership,
        Status.RESOLVED,
        clock,
        resolved_at=at,
        snoozed_until=None,
    )


def reopen_conversation(
    conversation: Conversation, *, membership: Membership
) -> Conversation:
    """Back to open (from resolved, pending or snoozed); a paused clock resumes
    from now with the target less the time it used."""
    at = timezone.now()
    return _transition(
        conversation,
        membership,
        Status.OPEN,
        lambda locked: sla.resume_clock(locked, at=at),
        resolved_at=None,
        snoozed_until=None,
    )


def mark_pending(conversation: Conversation, *, membership: Membership) -> Conversation:
    """Waiting on the customer; a customer message makes it open again.

    When the brand pauses while pending (the default), the running clock stops
    counting until a customer message or a reopen resumes it.
    """
    at = timezone.now()
    return _transition(
        conversation,
        membership,
        Status.PENDING,
        lambda locked: sla.pause_clock(locked, at=at),
        snoozed_until=None,
    )


def snooze_conversation(
    conversation: Conversation, *, membership: Membership, until: datetime
) -> Conversation:
    """Hide until `until`; it wakes by itself then, or earlier on a customer message.

    Raises InvalidTransition for a time in the past.
    """
    if until <= timezone.now():
        raise InvalidTransition("Snooze until a time in the future.", field="until")
    return _transition(conversation, membership, Status.SNOOZED, snoozed_until=until)


def wake_snoozed_conversations(tenant: Tenant) -> int:
    """Reopen the tenant's snoozed conversations that are due. Call in its context."""
    # The earliest due first, read through helpdesk_conv_snoozed_ix: in the model's
    # default order the LIMIT's generic plan walked an index over every
    # conversation of the tenant (tests/helpdesk/test_snoozed_sweep_plans.py).
    due = list(
        Conversation.objects.select_for_update(skip_locked=True)
        .filter(status=Status.SNOOZED, snoozed_until__lte=timezone.now())
        .order_by("snoozed_until", "id")[:500]
    )
    for conversation in due:
        _apply(conversation, Status.OPEN, {"snoozed_until": None})
    return len(due)
