"""Conversation status: open, pending, snoozed (until a time), resolved."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from helpdesk import events
from helpdesk.exceptions import InvalidTransition
from helpdesk.models import Conversation
from tenants.access import require_role
from tenants.models import Membership, Tenant

Status = Conversation.Status


def _transition(
    conversation: Conversation, membership: Membership, status: str, **fields: object
) -> Conversation:
    require_role(membership, Membership.Role.AGENT)
    with transaction.atomic():
        locked = Conversation.objects.select_for_update(of=("self",)).get(
            pk=conversation.pk
        )
        _apply(locked, status, fields)
    return locked


def _apply(
    conversation: Conversation, status: str, fields: dict[str, object]
) -> dict[str, object]:
    changed: dict[str, object] = {}
    values = {"status": status, **fields}
    for name, value in values.items():
        if getattr(conversation, name) != value:
            setattr(conversation, name, value)
            changed[name] = value.isoformat() if isinstance(value, datetime) else value
    if changed:
        conversation.save(update_fields=list(values))
        events.emit(
            conversation.tenant_id,
            "conversation.updated",
            conversation_id=conversation.pk,
            brand_id=conversation.brand_id,
            changed=changed,
        )
    return changed


def resolve_conversation(
    conversation: Conversation, *, membership: Membership
) -> Conversation:
    """Mark resolved. A new customer message reopens it. Agents and above."""
    return _transition(
        conversation,
        membership,
        Status.RESOLVED,
        resolved_at=timezone.now(),
        snoozed_until=None,
    )


def reopen_conversation(
    conversation: Conversation, *, membership: Membership
) -> Conversation:
    """Back to open (from resolved, pending or snoozed)."""
    return _transition(
        conversation, membership, Status.OPEN, resolved_at=None, snoozed_until=None
    )


def mark_pending(conversation: Conversation, *, membership: Membership) -> Conversation:
    """Waiting on the customer; a customer message makes it open again."""
    return _transition(conversation, membership, Status.PENDING, snoozed_until=None)


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
    due = list(
        Conversation.objects.select_for_update(skip_locked=True).filter(
            status=Status.SNOOZED, snoozed_until__lte=timezone.now()
        )[:500]
    )
    for conversation in due:
        _apply(conversation, Status.OPEN, {"snoozed_until": None})
    return len(due)
