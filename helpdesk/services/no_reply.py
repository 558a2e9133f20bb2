""" "No reply needed" (R9's fair denominator): an agent says a conversation needs
no answer (spam, chatter, thanks, duplicate), so it leaves the response rate.

The mark is separate from resolving: the status stays as it is. It stops a running
response clock without a response fact, records the `no_reply` care fact and is
audited. A later customer message starts a clock as usual; the mark stays, and an
answer after it is recorded as a first response "after_no_reply", which the
rollups keep out of the rate (the conversation already left its denominator).
"""

from django.db import transaction
from django.utils import timezone

from helpdesk import events
from helpdesk.exceptions import HelpdeskError
from helpdesk.models import CareFact, Conversation, NoReplyReason
from helpdesk.services import sla
from tenants.access import require_role
from tenants.models import Membership
from tenants.services import record_audit

AUDIT_ACTION = "conversation.no_reply"


class NoReplyRefused(HelpdeskError):
    """An unknown reason (400), or a conversation that cannot take the mark (409)."""

    code = "no_reply_refused"


class NoReplyNotAllowed(NoReplyRefused):
    """The conversation was answered already, or is marked already."""

    http_status = 409


def mark_no_reply(
    conversation: Conversation, *, membership: Membership, reason: str
) -> Conversation:
    """Mark `conversation` as needing no reply, for `reason` (NoReplyReason).

    Agents and above (PermissionDenied otherwise). Raises NoReplyRefused (field
    "reason") for an unknown reason, and NoReplyNotAllowed for a conversation
    that already had a first response or is marked already; nothing changes then.
    Under the row lock: sets no_reply_reason/at/by, clears a running clock (no
    response fact), records the `no_reply` fact and the "conversation.no_reply"
    AuditEvent, and emits conversation.updated with the changed fields after
    commit. Returns the updated conversation.
    """
    require_role(membership, Membership.Role.AGENT)
    if reason not in NoReplyReason.values:
        choices = ", ".join(NoReplyReason.values)
        raise NoReplyRefused(f"Choose a reason: {choices}.", field="reason")
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("brand")
            .get(pk=conversation.pk)
        )
        if locked.first_response_at is not None:
            raise NoReplyNotAllowed(
                "This conversation was answered already; resolve it instead.",
                field="reason",
            )
        if locked.no_reply_reason:
            raise NoReplyNotAllowed(
                "This conversation is marked “no reply needed” already.",
                field="reason",
            )
        at = timezone.now()
        started = locked.sla_started_at or locked.first_customer_message_at or at
        sla.record_fact(
            locked,
            CareFact.Kind.NO_REPLY,
            started_at=started,
            at=at,
            agent=membership.user,
            reason=reason,
        )
        changed = sla.stop_without_response(locked)
        locked.no_reply_reason = reason
        locked.no_reply_at = at
        locked.no_reply_by = membership.user
        changed |= {"no_reply_reason": reason, "no_reply_at": at}
        locked.save(update_fields=[*changed, "no_reply_by"])
        changed["no_reply_by_id"] = membership.user.pk
        record_audit(
            membership.tenant,
            actor=membership.user,
            action=AUDIT_ACTION,
            obj=locked,
            reason=reason,
        )
        events.emit(
            locked.tenant_id,
            "conversation.updated",
            conversation_id=locked.pk,
            brand_id=locked.brand_id,
            changed=sla.jsonable(changed),
        )
    return locked
