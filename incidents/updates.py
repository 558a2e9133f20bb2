"""One personalised update to every customer of an incident (R13).

The agent writes one text with placeholders; each linked customer gets their own
`helpdesk.services.replies.post_reply`, so every care rule still holds:

- R3: a customer already at the brand's public limit gets the update privately
  where the platform allows it, or is listed as skipped with the reason;
- R5: each reply waits the brand's hold (post_reply schedules it);
- R6: the text needs a personal placeholder ({first_name}, {name} or {handle}),
  and {greeting} varies the opening, so no two customers get the same post. The
  brand's near-duplicate check runs for each reply, against the brand's recent
  public replies *outside* this update (its siblings are alike by design). When it
  flags one, that customer is not sent to: the recipient is listed as failed with
  the warning, and its retry is the composer's "send anyway" (it confirms the
  warning), so an agent decides, never the loop;
- platform posting limits: a task sends at most `pace(platform)[0]` replies per
  account per tick and re-enqueues itself for the next tick.

At most once: each recipient row is claimed (row lock, skip locked) and completed
in the same transaction as its post_reply. A worker that dies mid-send rolls both
back; the re-run (the task again, or the sweep) finds the row still pending.
"""

import re
from collections import Counter
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from helpdesk import events
from helpdesk.exceptions import HelpdeskError
from helpdesk.models import Conversation, Identity, Message
from helpdesk.publish import enqueue_task_on_commit, on_commit
from helpdesk.services.replies import (
    WARNING_NEAR_DUPLICATE,
    channel_refusal,
    is_near_duplicate,
    post_reply,
    render_saved_reply,
    with_signature,
)
from incidents.models import (
    Incident,
    IncidentEntry,
    IncidentLink,
    IncidentUpdate,
    UpdateRecipient,
)
from incidents.services import IncidentInvalid, _check_open, _entry
from tenants.access import require_role
from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User

Visibility = Message.Visibility
Status = UpdateRecipient.Status
PERSONAL = ("first_name", "name", "handle")
KNOWN = (*PERSONAL, "agent_name", "brand_name", "greeting", "incident")
GREETINGS = ("Hi", "Hello", "Hey")
# Replies per account per tick, and the tick (seconds), per platform: X allows
# about 100 posts per 15 minutes per user (reference/platforms.md §3.6).
PACE: dict[str, tuple[int, float]] = {"x": (1, 9.0)}
DEFAULT_PACE = (5, 1.0)
SWEEP_AFTER = timedelta(seconds=20)
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def pace(platform: str) -> tuple[int, float]:
    """(replies per account per tick, tick seconds) for `platform`."""
    return PACE.get(platform, DEFAULT_PACE)


def check_update_text(text: str) -> str:
    """The update's text, stripped; raises IncidentInvalid (field "text") when it
    is blank, too long, has an unknown placeholder or no personal one (R6)."""
    body = text.strip()
    if not body:
        raise IncidentInvalid("Write the update first.", field="text")
    if len(body) > 2000:
        raise IncidentInvalid(
            "Ensure this field has no more than 2000 characters.", field="text"
        )
    names = set(PLACEHOLDER.findall(body))
    unknown = sorted(names - set(KNOWN))
    if unknown:
        raise IncidentInvalid(
            f"Unknown placeholder {{{unknown[0]}}}; use "
            + ", ".join(f"{{{k}}}" for k in KNOWN)
            + ".",
            field="text",
        )
    if not names & set(PERSONAL):
        raise IncidentInvalid(
            "Add {first_name}, {name} or {handle}: platforms reject identical "
            "posts, and each customer deserves their own reply (R6).",
            field="text",
        )
    return body


def render_update(
    text: str,
    *,
    conversation: Conversation,
    agent: User,
    incident: Incident,
    position: int,
    handle: str,
) -> str:
    """The update for one customer: {handle}, {name}, {greeting} (varied by
    position), {incident}, then the saved-reply placeholders ({first_name},
    {agent_name}, {brand_name}) as helpdesk.services.replies renders them."""
    name = (conversation.contact.display_name or "").strip()
    values = {
        "handle": f"@{handle}" if handle else (name or "there"),
        "name": name or (f"@{handle}" if handle else "there"),
        "greeting": GREETINGS[position % len(GREETINGS)],
        "incident": incident.title,
    }
    filled = PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    return render_saved_reply(filled, conversation=conversation, agent=agent)


def _handle(conversation: Conversation) -> str:
    identity = (
        Identity.objects.filter(
            contact_id=conversation.contact_id, platform=conversation.platform
        )
        .order_by("id")
        .first()
    )
    return identity.handle if identity else ""


def plan_for(conversation: Conversation) -> tuple[str | None, str]:
    """(visibility, "") the update would go out in, or (None, reason) when the
    customer is skipped: resolved, or at the public limit (R3) with no private
    channel the platform allows."""
    if conversation.status == Conversation.Status.RESOLVED:
        return None, "The conversation is resolved."
    chosen = conversation.channel_state
    limit = conversation.brand.public_reply_limit
    if chosen == Visibility.PUBLIC and conversation.public_reply_count >= limit:
        refusal = channel_refusal(conversation, Visibility.PRIVATE)
        if refusal is not None:
            return None, (
                f"R3: already answered publicly {conversation.public_reply_count} "
                f"times in this thread (limit {limit}); no private channel: {refusal}"
            )
        return Visibility.PRIVATE, ""
    return chosen, ""


def preview_update(
    membership: Membership,
    incident: Incident,
    *,
    text: str,
    conversations: list[Conversation],
) -> list[dict[str, Any]]:
    """The update rendered for sample customers (with the signature, as sent) and
    how each would get it; nothing is written. Raises IncidentInvalid."""
    require_role(membership, Membership.Role.AGENT)
    body = check_update_text(text)
    samples = []
    for position, conversation in enumerate(conversations):
        visibility, reason = plan_for(conversation)
        rendered = render_update(
            body,
            conversation=conversation,
            agent=membership.user,
            incident=incident,
            position=position,
            handle=_handle(conversation),
        )
        if visibility is not None:
            rendered = with_signature(
                rendered,
                brand=conversation.brand,
                platform=conversation.platform,
                agent=membership.user,
                visibility=visibility,
            )
        samples.append(
            {
                "conversation_id": conversation.pk,
                "customer": str(conversation.contact),
                "visibility": visibility or "",
                "skip_reason": reason,
                "text": rendered,
            }
        )
    return samples


def start_update(
    membership: Membership, incident: Incident, *, text: str, idempotency_key: str
) -> tuple[IncidentUpdate, bool]:
    """Create the update and one pending recipient per linked conversation, and
    enqueue incidents.send_update on commit. Returns (update, created).

    The same idempotency key returns the update it made (a double click, a
    retried request) and enqueues nothing. Raises IncidentInvalid, IncidentClosed.
    """
    require_role(membership, Membership.Role.AGENT)
    body = check_update_text(text)
    _check_open(incident)
    existing = IncidentUpdate.objects.filter(
        incident=incident, idempotency_key=idempotency_key
    ).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            update = IncidentUpdate.objects.create(
                tenant_id=incident.tenant_id,
                incident=incident,
                text=body,
                idempotency_key=idempotency_key,
                created_by=membership.user,
            )
            links = (
                IncidentLink.objects.filter(incident=incident)
                .select_related("conversation")
                .order_by("created_at", "id")
            )
            UpdateRecipient.objects.bulk_create(
                [
                    UpdateRecipient(
                        tenant_id=incident.tenant_id,
                        update=update,
                        conversation_id=link.conversation_id,
                        account_id=link.conversation.social_account_id,
                        position=n,
                    )
                    for n, link in enumerate(links)
                ]
            )
            if not links:
                raise IncidentInvalid(
                    "Link conversations to the incident first.", field="text"
                )
            _schedule(update, countdown=0)
    except IntegrityError:
        # The same key raced in from another request: that one made the update.
        return IncidentUpdate.objects.get(
            incident=incident, idempotency_key=idempotency_key
        ), False
    return update, True


def _schedule(update: IncidentUpdate, *, countdown: float) -> None:
    enqueue_task_on_commit(
        "incidents.send_update",
        update.tenant_id,
        update.pk,
        countdown=countdown,
        swept_by="incidents.sweep_updates",
    )


def update_counts(update: IncidentUpdate) -> dict[str, int]:
    """How many recipients of the update are pending, sent, skipped, failed."""
    rows = (
        UpdateRecipient.objects.filter(update=update)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    counts = dict(rows)
    result = {status: int(counts.get(status, 0)) for status in Status.values}
    result["total"] = sum(result[s] for s in Status.values)
    return result


def _push(update: IncidentUpdate, recipient: UpdateRecipient | None) -> None:
    payload: events.IncidentProgress = {
        "type": "incident.progress",
        "incident_id": update.incident_id,
        "update_id": update.pk,
        "status": update.status,
        "counts": update_counts(update),
    }
    if recipient is not None:
        payload["recipient_id"] = recipient.pk
        payload["conversation_id"] = recipient.conversation_id
        payload["recipient_status"] = recipient.status
    group = events.inbox_group(update.tenant_id)
    on_commit(lambda: events.send_to_group(group, dict(payload)))


def _repeats_outside(conversation: Conversation, text: str, update_id: int) -> bool:
    """The brand's near-duplicate check (R6) against its recent public replies,
    leaving out this update's own (alike by design)."""
    siblings = UpdateRecipient.objects.filter(
        update_id=update_id, message__isnull=False
    ).values("message_id")
    return is_near_duplicate(conversation.brand_id, text, excluding=siblings)


def send_to_recipient(recipient_id: int) -> str | None:
    """Send the update to one customer: claim, post_reply, complete, in one
    transaction. Returns the recipient's new status, or None when another run
    holds it or it is not pending (nothing done). Call in the tenant's context.
    """
    with transaction.atomic():
        recipient = (
            UpdateRecipient.objects.select_for_update(skip_locked=True)
            .filter(pk=recipient_id, status=Status.PENDING)
            .first()
        )
        if recipient is None:
            return None
        update = IncidentUpdate.objects.select_related("incident").get(
            pk=recipient.update_id
        )
        conversation = Conversation.objects.select_related("brand", "contact").get(
            pk=recipient.conversation_id
        )
        recipient.attempts += 1
        status, reason, message = _deliver(update, recipient, conversation)
        recipient.status = status
        recipient.reason = reason[:300]
        recipient.message = message
        recipient.visibility = message.visibility if message else ""
        recipient.done_at = timezone.now()
        recipient.save(
            update_fields=[
                "status",
                "reason",
                "message",
                "visibility",
                "attempts",
                "done_at",
                "flagged",
            ]
        )
        _push(update, recipient)
    return status


def _deliver(
    update: IncidentUpdate, recipient: UpdateRecipient, conversation: Conversation
) -> tuple[str, str, Message | None]:
    membership = (
        Membership.objects.select_related("user", "tenant")
        .filter(user_id=update.created_by_id or 0)
        .first()
    )
    if membership is None:
        return Status.FAILED, "The update's author is no longer a member.", None
    visibility, reason = plan_for(conversation)
    if visibility is None:
        return Status.SKIPPED, reason, None
    text = render_update(
        update.text,
        conversation=conversation,
        agent=membership.user,
        incident=update.incident,
        position=recipient.position,
        handle=_handle(conversation),
    )
    recipient.flagged = False
    if (
        visibility == Visibility.PUBLIC
        and not recipient.confirm_duplicate
        and _repeats_outside(conversation, text, update.pk)
    ):
        recipient.flagged = True
        return (
            Status.FAILED,
            "Near-duplicate of a recent public reply outside this update (R6): "
            "review it, then send anyway.",
            None,
        )
    try:
        outcome = post_reply(
            conversation,
            membership=membership,
            text=text,
            visibility=visibility,
            confirm=(WARNING_NEAR_DUPLICATE,),
        )
    except HelpdeskError as refusal:
        return Status.FAILED, refusal.message, None
    return Status.SENT, "", outcome.message


def send_update_tick(tenant: Tenant | int, update_id: int) -> float | None:
    """Send one tick's share of an update: per account, up to its pace's number
    of pending recipients. Returns the seconds until the next tick, or None when
    nothing is pending (the update is then marked done, once).

    Opens the tenant itself: each recipient is its own transaction (its claim,
    its post_reply and its completion), so a worker killed mid-tick loses only
    the recipient in flight, which stays pending.
    """
    with tenant_context(tenant):
        update = IncidentUpdate.objects.filter(pk=update_id).first()
        if update is None:
            return None
        pending = list(
            UpdateRecipient.objects.filter(update=update, status=Status.PENDING)
            .order_by("position", "id")
            .values_list("pk", "account_id", "conversation__platform")
        )
    taken: Counter[int | None] = Counter()
    tick = 0.0
    sent_now = 0
    for recipient_id, account_id, platform in pending:
        per_tick, seconds = pace(platform)
        if taken[account_id] >= per_tick:
            continue
        taken[account_id] += 1
        tick = max(tick, seconds)
        with tenant_context(tenant):
            send_to_recipient(recipient_id)
        sent_now += 1
    if sent_now < len(pending):
        return tick or DEFAULT_PACE[1]
    with tenant_context(tenant):
        _finish(update)
    return None


def _finish(update: IncidentUpdate) -> None:
    with transaction.atomic():
        locked = IncidentUpdate.objects.select_for_update().get(pk=update.pk)
        if locked.status != IncidentUpdate.Status.SENDING:
            return
        if UpdateRecipient.objects.filter(
            update=locked, status=Status.PENDING
        ).exists():
            return
        locked.status = IncidentUpdate.Status.DONE
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at"])
        counts = update_counts(locked)
        incident = Incident.objects.get(pk=locked.incident_id)
        _entry(
            incident,
            IncidentEntry.Kind.UPDATE,
            actor=None,
            text=f"{counts['sent']} sent, {counts['skipped']} skipped, "
            f"{counts['failed']} failed",
            data={"update_id": locked.pk, **counts},
        )
        _push(locked, None)


def retry_recipients(
    membership: Membership,
    update: IncidentUpdate,
    *,
    recipients: list[UpdateRecipient],
    confirm_duplicate: bool = False,
) -> int:
    """Queue failed recipients again (the update resumes sending). With
    `confirm_duplicate`, flagged ones are sent anyway (the agent confirmed R6's
    warning). Returns how many were queued; others (sent, skipped) stay."""
    require_role(membership, Membership.Role.AGENT)
    with transaction.atomic():
        locked = IncidentUpdate.objects.select_for_update().get(pk=update.pk)
        ids = [r.pk for r in recipients]
        queued = UpdateRecipient.objects.filter(
            update=locked, pk__in=ids, status=Status.FAILED
        )
        if confirm_duplicate:
            queued.filter(flagged=True).update(confirm_duplicate=True)
        count = queued.update(status=Status.PENDING, reason="")
        if count:
            locked.status = IncidentUpdate.Status.SENDING
            locked.finished_at = None
            locked.save(update_fields=["status", "finished_at"])
            _schedule(locked, countdown=0)
            _push(locked, None)
    return count


def stalled_updates() -> list[int]:
    """Updates still sending whose task may be lost (for incidents.sweep_updates):
    pending recipients, and nothing completed for SWEEP_AFTER."""
    cutoff = timezone.now() - SWEEP_AFTER
    ids = []
    for update in IncidentUpdate.objects.filter(status=IncidentUpdate.Status.SENDING):
        recipients = UpdateRecipient.objects.filter(update=update)
        if not recipients.filter(status=Status.PENDING).exists():
            ids.append(update.pk)  # all done: the sweep's run marks it done
            continue
        if update.created_at > cutoff:
            continue
        if recipients.filter(done_at__gt=cutoff).exists():
            continue
        ids.append(update.pk)
    return ids
