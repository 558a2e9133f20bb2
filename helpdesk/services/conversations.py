"""Several changes to one conversation at once (the API's PATCH, bulk tools).

Each field goes through its own service, so the rules and events are the ones the
inbox uses; this only orders them and runs them in one transaction, so a refused
change leaves the others unapplied.
"""

from datetime import datetime

from django.db import transaction

from helpdesk import events
from helpdesk.exceptions import InvalidTransition
from helpdesk.models import Conversation
from helpdesk.services import assignment, lifecycle, notes
from tenants.access import require_role
from tenants.models import Membership, User

Status = Conversation.Status
UNSET = object()


def update_conversation(
    conversation: Conversation,
    *,
    membership: Membership,
    status: str | None = None,
    snooze_until: datetime | None = None,
    priority: int | None = None,
    assignee: User | object | None = UNSET,
    tags: list[str] | None = None,
) -> Conversation:
    """Apply the given changes atomically; omitted arguments are left alone.

    `assignee=None` unassigns. `status="snoozed"` needs `snooze_until`. Raises
    InvalidTransition (and changes nothing) when any part is refused. Agents and
    above. Emits conversation.updated per change.
    """
    require_role(membership, Membership.Role.AGENT)
    with transaction.atomic():
        if assignee is not UNSET:
            target = assignee if isinstance(assignee, User) else None
            conversation = assignment.assign_conversation(
                conversation, membership=membership, assignee=target
            )
        if priority is not None:
            _set_priority(conversation, priority)
        if tags is not None:
            notes.set_tags(conversation, membership=membership, names=tags)
        if status is not None:
            conversation = _set_status(conversation, membership, status, snooze_until)
    conversation.refresh_from_db()
    return conversation


def _set_status(
    conversation: Conversation,
    membership: Membership,
    status: str,
    snooze_until: datetime | None,
) -> Conversation:
    if status == Status.SNOOZED:
        if snooze_until is None:
            raise InvalidTransition("Say until when to snooze.", field="snooze_until")
        return lifecycle.snooze_conversation(
            conversation, membership=membership, until=snooze_until
        )
    change = {
        Status.OPEN: lifecycle.reopen_conversation,
        Status.PENDING: lifecycle.mark_pending,
        Status.RESOLVED: lifecycle.resolve_conversation,
    }[Status(status)]
    return change(conversation, membership=membership)


def _set_priority(conversation: Conversation, priority: int) -> None:
    locked = Conversation.objects.select_for_update(of=("self",)).get(
        pk=conversation.pk
    )
    if locked.priority == priority:
        return
    locked.priority = priority
    locked.save(update_fields=["priority"])
    events.emit(
        locked.tenant_id,
        "conversation.updated",
        conversation_id=locked.pk,
        brand_id=locked.brand_id,
        changed={"priority": priority},
    )
