"""Agent replies and the care rules that govern them (R2-R7).

`post_reply` is the only way a reply is created; the REST API, the pages and the
commands call it. It checks the rules under the conversation's row lock, creates a
`scheduled` Message whose hold (R5) gives the agent time to undo or edit it, and
schedules delivery on commit.
"""

import difflib
import re
from collections import Counter
from collections.abc import Collection
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from helpdesk import events
from helpdesk.deflection import WARNING_DEFLECTION, deflection_warning
from helpdesk.exceptions import (
    AnotherReplyPending,
    ConversationResolved,
    MessageNotEditable,
    PlatformRefuses,
    PrivateFirstRefused,
    PublicReplyLimitReached,
    ReplyInvalid,
    ReplyNeedsConfirmation,
)
from helpdesk.models import Conversation, Message
from helpdesk.publish import enqueue_task_on_commit
from helpdesk.services import delivery_slots, rollups, sla, writebatch
from helpdesk.services.bulkrows import build_row
from helpdesk.services.reply_lock import (
    lock_conversation_for_reply,
    locked_in_this_transaction,
)
from social.connectors import get_connector
from social.connectors.base import Capabilities
from tenants.access import require_role
from tenants.models import Brand, Membership, User
from tenants.services import record_audit

Visibility = Message.Visibility
Delivery = Message.DeliveryStatus
_OUT = Message.Direction.OUT.value
_SCHEDULED = Delivery.SCHEDULED.value
NEAR_DUPLICATE_RATIO = 0.9
NEAR_DUPLICATE_LOOKBACK = timedelta(days=7)
WARNING_NEAR_DUPLICATE = "near_duplicate"
WARNING_STALE_VIEW = "stale_view"


@dataclass
class ReplyOutcome:
    message: Message
    warnings_confirmed: frozenset[str] = field(default_factory=frozenset)
    overridden_limit: bool = False


def capabilities_for(conversation: Conversation) -> Capabilities:
    return get_connector(conversation.platform).capabilities


def channel_refusal(conversation: Conversation, visibility: str) -> str | None:
    """Why a reply in `visibility` cannot go out in this conversation, or None.

    The channel rules of post_reply (R2 and the platform's capabilities: public
    thread, mention needed, private messages, window); no limit, hold or length
    check. Raises ConnectorError when the platform has no connector.
    """
    try:
        _check_visibility(conversation, capabilities_for(conversation), visibility)
    except (PlatformRefuses, PrivateFirstRefused, ReplyInvalid) as refusal:
        return refusal.message
    return None


def post_reply(
    conversation: Conversation,
    *,
    membership: Membership,
    text: str,
    visibility: str | None = None,
    seen_seq: int | None = None,
    confirm: Collection[str] = (),
    override_reason: str = "",
    kind: str = Message.Kind.REPLY,
) -> ReplyOutcome:
    """Queue an agent's reply after applying every reply rule.

    - visibility defaults to the conversation's channel (R2);
    - a private first answer to a public conversation is refused unless the brand
      allows it (R2);
    - the brand's public reply limit is checked and counted under the row lock; an
      admin may override it with a reason, which is audited (R3);
    - one public answer per conversation may be in its hold at a time (R7);
    - platform capabilities and length (after the signature, R7) are enforced;
    - near-duplicates of the brand's recent public replies (R6) and replies written
      against a stale view (the customer or another agent wrote since `seen_seq`)
      raise ReplyNeedsConfirmation unless the warning is in `confirm`.
    The Message is created `scheduled` for now + the brand's hold (R5); the
    response clock stops now. Emits message.created and conversation.updated, and
    enqueues helpdesk.deliver_message on commit.
    """
    require_role(membership, Membership.Role.AGENT)
    body = text.strip()
    if not body:
        raise ReplyInvalid("Write a reply first.", field="text")
    # Inside a transaction already (an API request): no savepoint. Every check
    # below raises before anything is written, so a refusal leaves the caller's
    # transaction as it was; the row lock lasts until it ends.
    with (
        transaction.atomic()
        if not transaction.get_connection().in_atomic_block
        else nullcontext()
    ):
        locked = (
            conversation
            if locked_in_this_transaction(conversation)
            else lock_conversation_for_reply(conversation.pk)
        )
        if locked.status == Conversation.Status.RESOLVED:
            raise ConversationResolved(
                "This conversation is resolved. Reopen it to reply.", field="status"
            )
        caps = capabilities_for(locked)
        chosen = visibility or locked.channel_state
        _check_visibility(locked, caps, chosen)
        overridden = False
        if chosen == Visibility.PUBLIC:
            overridden = _check_public_limit(locked, membership, override_reason)
            _check_nothing_pending(locked, membership.user)
        full_text = with_signature(
            body,
            brand=locked.brand,
            platform=locked.platform,
            agent=membership.user,
            visibility=chosen,
        )
        if len(full_text) > caps.max_length:
            raise ReplyInvalid(
                f"{locked.get_platform_display()} allows {caps.max_length} characters; "
                f"this reply has {len(full_text)} with the signature.",
                field="text",
                limit=caps.max_length,
            )
        warnings = reply_warnings(locked, membership.user, full_text, chosen, seen_seq)
        unconfirmed = {k: v for k, v in warnings.items() if k not in set(confirm)}
        if unconfirmed:
            raise ReplyNeedsConfirmation(unconfirmed)
        # The reply's statement is the transaction's last write unless the
        # override's audit row follows it (tenants.last_write).
        message = _queue(
            locked, membership, full_text, chosen, kind, last_write=not overridden
        )
        if overridden:
            record_audit(
                membership.tenant,
                actor=membership.user,
                action="reply.limit_overridden",
                obj=message,
                reason=override_reason,
                data={"conversation_id": locked.pk, "count": locked.public_reply_count},
            )
    return ReplyOutcome(message, frozenset(warnings), overridden)


# Visibility.values builds its list on every read.
_VISIBILITIES = tuple(Visibility.values)


def _check_visibility(
    conversation: Conversation, caps: Capabilities, chosen: str
) -> None:
    if chosen not in _VISIBILITIES:
        raise ReplyInvalid("Choose public or private.", field="visibility")
    # The platform's name, looked up only for a refusal's message.
    platform = conversation.get_platform_display
    if chosen == Visibility.PUBLIC:
        if not conversation.public_thread_ref:
            raise PlatformRefuses(
                "This conversation has no public thread; answer privately.",
                field="visibility",
            )
        if not caps.public_reply:
            raise PlatformRefuses(f"{platform()} does not allow public replies here.")
        if caps.public_reply_needs_mention and not conversation.mentions_account:
            raise PlatformRefuses(
                f"{platform()} only lets you reply publicly to posts that mention your "
                "account. Answer privately if the customer accepts messages, or like "
                "the post.",
                field="visibility",
            )
        return
    if not caps.private_message:
        raise PlatformRefuses(f"{platform()} has no private messages; reply publicly.")
    brand = conversation.brand
    public_first = conversation.started_public and conversation.public_reply_count == 0
    if (
        public_first
        and not conversation.awaiting_private
        and not brand.private_first_allowed
    ):
        raise PrivateFirstRefused(
            "Answer publicly first, in the channel the customer chose; then move to "
            "private for the details.",
            field="visibility",
        )
    if not conversation.private_thread_ref and not caps.start_private:
        raise PlatformRefuses(
            f"{platform()} does not let you start a private conversation. Use "
            "“Move to private” to invite the customer to message you.",
            field="visibility",
        )
    window = caps.private_reply_window
    last = conversation.last_customer_message_at
    if window is not None and last is not None and timezone.now() - last > window:
        hours = int(window.total_seconds() // 3600)
        raise PlatformRefuses(
            f"{platform()} allows private replies within {hours} hours of the "
            "customer's last message; that window has closed.",
            field="visibility",
        )


def _check_public_limit(
    conversation: Conversation, membership: Membership, override_reason: str
) -> bool:
    limit = conversation.brand.public_reply_limit
    if conversation.public_reply_count < limit:
        return False
    if override_reason.strip() and membership.has_role(Membership.Role.ADMIN):
        return True
    raise PublicReplyLimitReached(
        f"You have replied publicly {conversation.public_reply_count} times in this "
        f"thread (the limit is {limit}). Move to private to continue; an admin can "
        "override with a reason.",
        field="visibility",
        limit=limit,
        suggestion="move_to_private",
    )


def is_pending_public_answer(message: Message) -> bool:
    """Whether `message` is a public answer in its hold, the kind R7 allows one of.

    The in-memory twin of `_check_nothing_pending`'s query, for pages that already
    hold the thread's messages. An automatic reply (R8) is no agent's answer.
    """
    return (
        message.direction == Message.Direction.OUT
        and message.visibility == Visibility.PUBLIC
        and message.delivery_status == Delivery.SCHEDULED
        and message.kind != Message.Kind.AUTO_REPLY
    )


def _check_nothing_pending(conversation: Conversation, agent: User) -> None:
    pending = (
        Message.objects.filter(
            conversation=conversation,
            direction=Message.Direction.OUT,
            visibility=Visibility.PUBLIC,
            delivery_status=Delivery.SCHEDULED,
        )
        # An automatic reply (R8) is no agent's answer and has no hold to wait out.
        .exclude(kind=Message.Kind.AUTO_REPLY)
        .select_related("author_agent")
        .first()
    )
    if pending is None:
        return
    if pending.author_agent_id == agent.pk:
        raise AnotherReplyPending(
            "Your previous public reply is still in its hold. Edit it instead.",
            message_id=pending.pk,
        )
    name = pending.author_agent.public_name if pending.author_agent else "Another agent"
    raise AnotherReplyPending(
        f"{name}'s public reply is about to be sent; another agent's reply is about to "
        "be sent, so wait for it or add a note.",
        message_id=pending.pk,
        agent=name,
    )


def reply_warnings(
    conversation: Conversation,
    agent: User,
    text: str,
    visibility: str,
    seen_seq: int | None,
) -> dict[str, str]:
    """Warnings the agent must confirm before the reply is queued."""
    warnings: dict[str, str] = {}
    if seen_seq is not None:
        newer = (
            Message.objects.filter(conversation=conversation, seq__gt=seen_seq)
            .exclude(direction=Message.Direction.OUT, author_agent=agent)
            .order_by("seq")
            .first()
        )
        if newer is not None:
            who = (
                "The customer"
                if newer.direction == Message.Direction.IN
                else "Another agent"
            )
            warnings[WARNING_STALE_VIEW] = (
                f"{who} wrote again since you opened this conversation. Read it first."
            )
    if visibility == Visibility.PUBLIC and is_near_duplicate(conversation.brand, text):
        warnings[WARNING_NEAR_DUPLICATE] = (
            "This reply is almost the same as a recent public reply. Write it for this "
            "customer; platforms also reject duplicate posts."
        )
    if visibility == Visibility.PUBLIC and (
        deflects := deflection_warning(
            text,
            platform=conversation.platform,
            brand_phrases=conversation.brand.deflection_phrases,
        )
    ):
        warnings[WARNING_DEFLECTION] = deflects
    return warnings


_TAGS = re.compile(r"[@#]\w+")
_PUNCTUATION = re.compile(r"[^\w\s]")


def _normalize(text: str) -> str:
    text = _TAGS.sub(" ", text.lower())
    text = _PUNCTUATION.sub(" ", text)
    return " ".join(text.split())


def _quick_ratio(a: str, b_counts: Counter[str], b_size: int) -> float:
    """SequenceMatcher(None, a, b).quick_ratio() for the b whose character
    counts and length are given: the characters a and b share, counted with
    multiplicity (difflib counts them in a Python loop over a)."""
    matches = sum((Counter(a) & b_counts).values())
    size = len(a) + b_size
    return 2.0 * matches / size if size else 1.0


def is_near_duplicate(
    brand: Brand | int, text: str, *, excluding: QuerySet[Any] | None = None
) -> bool:
    """True when `text` nearly repeats one of the brand's recent public replies (R6),
    leaving out the messages whose ids `excluding` selects (an incident update's
    own replies, alike by design)."""
    since = timezone.now() - NEAR_DUPLICATE_LOOKBACK
    recent = Message.objects.filter(
        conversation__brand=brand,
        direction=Message.Direction.OUT,
        visibility=Visibility.PUBLIC,
        created_at__gte=since,
    ).exclude(delivery_status=Delivery.CANCELLED)
    if excluding is not None:
        recent = recent.exclude(pk__in=excluding)
    recent = recent.order_by("-created_at")
    candidate = _normalize(text)
    matcher = difflib.SequenceMatcher(None, b=candidate, autojunk=False)
    counts, size = Counter(candidate), len(candidate)
    for previous in recent.values_list("text", flat=True)[:200]:
        earlier = _normalize(previous)
        matcher.set_seq1(earlier)
        if matcher.real_quick_ratio() < NEAR_DUPLICATE_RATIO:
            continue
        if (
            _quick_ratio(earlier, counts, size) >= NEAR_DUPLICATE_RATIO
            and matcher.ratio() >= NEAR_DUPLICATE_RATIO
        ):
            return True
    return False


def render_saved_reply(body: str, *, conversation: Conversation, agent: User) -> str:
    """Fill a saved reply's placeholders for this customer and agent (R6: a starting
    point to personalise, not a paste). Unknown placeholders are left as typed."""
    contact = conversation.contact
    name = (contact.display_name or "").strip()
    values = {
        "first_name": name.split()[0] if name else "there",
        "agent_name": agent.public_name,
        "brand_name": conversation.brand.name,
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), body)


def with_signature(
    text: str, *, brand: Brand, platform: str, agent: User, visibility: str
) -> str:
    """Append the brand's signature rule for `platform` to a public reply (R7).

    Rules are templates with {initials}, {first_name} and {agent_name}, keyed by
    platform with an optional "default".
    """
    if visibility != Visibility.PUBLIC:
        return text
    rules = brand.signature_rules or {}
    template = rules.get(platform, rules.get("default", ""))
    if not template:
        return text
    name = agent.public_name
    initials = "".join(part[0] for part in name.split() if part).upper()[:3]
    signature = str(template).format(
        initials=initials, first_name=name.split()[0] if name else "", agent_name=name
    )
    return text + signature if signature[:1].isspace() else f"{text} {signature}"


def _queue(
    conversation: Conversation,
    membership: Membership,
    text: str,
    visibility: str,
    kind: str,
    *,
    move: bool = False,
    last_write: bool = False,
) -> Message:
    """Create the scheduled reply; the response clock stops now (R5).

    `last_write`: nothing is written after it in this transaction, so its
    statement may go with COMMIT (tenants.last_write, when the caller allows).

    `move`: this reply moves the conversation to private (the invitation, or the
    private reply sent in its place). A queued reply records the response fact
    (private for a private reply and for a move to private) and is counted in
    the agent's rollup (public replies, moves to private).
    """
    now = timezone.now()
    public = visibility == Visibility.PUBLIC
    move = move or kind == Message.Kind.PRIVATE_INVITE
    # Choices as their plain values, as a row read back holds them (psycopg
    # looks a str subclass's dumper up again for every new cursor).
    message = build_row(
        Message,
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        account_id=conversation.social_account_id,
        platform=conversation.platform,
        direction=_OUT,
        visibility=str(visibility),
        kind=str(kind),
        author_agent=membership.user,
        text=text,
        delivery_status=_SCHEDULED,
        counts_toward_limit=public,
        send_after=now + timedelta(seconds=conversation.brand.send_hold_seconds),
        created_at=now,
    )
    # The tenant's event counter, which every write of the tenant waits for,
    # stays locked from the sequences' allocation to COMMIT: everything that
    # does not need them is worked out first. On PostgreSQL the row lock took
    # the message's id, so the message, its events (with their sequences) and
    # the rest are one statement, the request's last; elsewhere the message and
    # the sequences come just before the rest.
    new_id = getattr(conversation, "new_message_id", None)
    if new_id is not None:
        conversation.new_message_id = None  # type: ignore[attr-defined] # one use
    if writebatch.current() is not None:  # a caller's batch: not the last statement
        new_id = None
    with writebatch.write_batch() as batch:
        _fact, clock = sla.stop_for_response(
            conversation,
            at=now,
            agent=membership.user,
            visibility=Visibility.PRIVATE if move or not public else Visibility.PUBLIC,
        )
        changed: dict[str, object] = {"last_activity_at": now, **clock}
        conversation.last_activity_at = now
        conversation.last_answered_by = membership.user
        if public:
            conversation.public_reply_count += 1
            changed["public_reply_count"] = conversation.public_reply_count
        if conversation.first_response_at is None:
            conversation.first_response_at = now
            changed["first_response_at"] = now
        batch.update(
            conversation,
            [
                "last_activity_at",
                "last_answered_by",
                "public_reply_count",
                "first_response_at",
                *clock,
            ],
        )
        if public or move:
            rollups.count_reply(message, move_to_private=move)
        first_seq: int | writebatch.Sequences
        if new_id is not None:
            message.pk = new_id
            batch.last_write = last_write
            first_seq = batch.sequences(conversation.tenant_id, 2)
            batch.insert([message], sql=[{"seq": first_seq.at(0)}])
            first_seq.then(lambda first: setattr(message, "seq", first))
        else:
            writebatch.insert_with_sequences(message, events=2, dedupe=False)
            assert message.seq is not None  # noqa: S101 - set by the insert
            first_seq = message.seq
        events.emit_many(
            conversation.tenant_id,
            [
                (
                    "message.created",
                    {
                        "conversation_id": conversation.pk,
                        "brand_id": conversation.brand_id,
                        "message_id": message.pk,
                        "changed": _message_fields(message),
                    },
                ),
                (
                    "conversation.updated",
                    {
                        "conversation_id": conversation.pk,
                        "brand_id": conversation.brand_id,
                        "changed": sla.jsonable(changed),
                    },
                ),
            ],
            first_seq=first_seq,
            known=[message, conversation],
            store=batch.insert,
            # False when the row lock read that the workspace has no endpoint.
            webhooks=getattr(conversation, "has_webhook_endpoints", True),
        )
    if new_id is not None:
        message._state.adding = False
        message._state.db = "default"
    schedule_delivery(message)
    return message


def _message_fields(message: Message) -> dict[str, object]:
    return {
        "direction": message.direction,
        "visibility": message.visibility,
        "delivery_status": message.delivery_status,
        "send_after": message.send_after.isoformat() if message.send_after else None,
        "author_agent_id": message.author_agent_id,
    }


def _emit_message(
    message: Message,
    type: events.DurableType,
    *,
    seq: int | None = None,
    changed: dict[str, object],
) -> None:
    events.emit(
        message.tenant_id,
        type,
        seq=seq,
        conversation_id=message.conversation_id,
        brand_id=message.conversation.brand_id,
        message_id=message.pk,
        changed=changed,
    )


def schedule_delivery(message: Message) -> None:
    """Have the message delivered at its send time, on commit: through its
    tenant's task for that due slot (helpdesk.services.delivery_slots), else a
    helpdesk.deliver_message of its own."""
    if message.send_after is None:
        enqueue_task_on_commit(
            "helpdesk.deliver_message",
            message.tenant_id,
            message.pk,
            eta=None,
            swept_by="helpdesk.sweep_outbox",
        )
        return
    delivery_slots.schedule_on_commit(message.tenant_id, message.pk, message.send_after)


def _locked_outbound(message: Message, membership: Membership) -> Message:
    require_role(membership, Membership.Role.AGENT)
    return (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .get(pk=message.pk, direction=Message.Direction.OUT)
    )


def cancel_scheduled_reply(message: Message, *, membership: Membership) -> Message:
    """Undo a reply during its hold: it is never sent and frees its public slot.

    Raises MessageNotEditable once the hold is over (sending or sent).
    """
    with transaction.atomic():
        locked = _locked_outbound(message, membership)
        if locked.delivery_status != Delivery.SCHEDULED:
            raise MessageNotEditable(
                "The hold is over; this reply can no longer be undone."
            )
        locked.delivery_status = Delivery.CANCELLED
        locked.save(update_fields=["delivery_status"])
        release_public_slot(locked)
        _emit_message(
            locked, "message.updated", changed={"delivery_status": "cancelled"}
        )
    return locked


def edit_scheduled_reply(
    message: Message, *, membership: Membership, text: str
) -> Message:
    """Change a reply's text during its hold; the hold is not extended.

    The same length rule applies. Raises MessageNotEditable once the hold is over.
    """
    body = text.strip()
    if not body:
        raise ReplyInvalid("Write a reply first.", field="text")
    with transaction.atomic():
        locked = _locked_outbound(message, membership)
        if locked.delivery_status != Delivery.SCHEDULED:
            raise MessageNotEditable(
                "The hold is over; this reply can no longer be edited."
            )
        conversation = Conversation.objects.select_related("brand").get(
            pk=locked.conversation_id
        )
        full_text = with_signature(
            body,
            brand=conversation.brand,
            platform=locked.platform,
            agent=membership.user,
            visibility=locked.visibility,
        )
        limit = capabilities_for(conversation).max_length
        if len(full_text) > limit:
            raise ReplyInvalid(
                f"{conversation.get_platform_display()} allows {limit} characters; "
                f"this reply has {len(full_text)} with the signature.",
                field="text",
                limit=limit,
            )
        locked.text = full_text
        locked.save(update_fields=["text"])
        _emit_message(locked, "message.updated", changed={"text": True})
    return locked


def release_public_slot(message: Message) -> None:
    """Give back the public reply slot of a reply that will not be sent (invariant 4).

    Call inside the transaction that changed the message's status.
    """
    if not message.counts_toward_limit:
        return
    conversation = Conversation.objects.select_for_update(of=("self",)).get(
        pk=message.conversation_id
    )
    conversation.public_reply_count = max(0, conversation.public_reply_count - 1)
    conversation.save(update_fields=["public_reply_count"])
    message.counts_toward_limit = False
    message.save(update_fields=["counts_toward_limit"])
    events.emit(
        conversation.tenant_id,
        "conversation.updated",
        conversation_id=conversation.pk,
        brand_id=conversation.brand_id,
        changed={"public_reply_count": conversation.public_reply_count},
    )


def move_to_private(
    conversation: Conversation,
    *,
    membership: Membership,
    public_text: str,
    private_text: str = "",
    confirm: Collection[str] = (),
) -> list[Message]:
    """Switch channels, not platforms (R4).

    Posts one public reply (counted) inviting the customer to message privately,
    marks the conversation private and waiting, so the customer's next private
    message on this account joins it. Where the platform can answer a public item
    privately (Meta), `private_text` is also sent as a private reply. When the public
    limit is used up and the platform can open the private thread itself, only the
    private reply is sent. Returns the queued messages.
    """
    caps = capabilities_for(conversation)
    can_open_private = caps.private_reply_to_public or caps.start_private
    queued: list[Message] = []
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("brand")
            .get(pk=conversation.pk)
        )
        limit_left = locked.public_reply_count < locked.brand.public_reply_limit
        if limit_left or not (can_open_private and private_text.strip()):
            queued.append(
                post_reply(
                    locked,
                    membership=membership,
                    text=public_text,
                    visibility=Visibility.PUBLIC,
                    confirm=confirm,
                    kind=Message.Kind.PRIVATE_INVITE,
                ).message
            )
        locked.refresh_from_db()
        locked.channel_state = Conversation.ChannelState.PRIVATE
        locked.awaiting_private = True
        locked.save(update_fields=["channel_state", "awaiting_private"])
        if can_open_private and private_text.strip():
            queued.append(
                _queue_private_reply(
                    locked, membership, private_text.strip(), move=not queued
                )
            )
        events.emit(
            locked.tenant_id,
            "conversation.updated",
            conversation_id=locked.pk,
            brand_id=locked.brand_id,
            changed={"channel_state": "private", "awaiting_private": True},
        )
    return queued


def _queue_private_reply(
    conversation: Conversation, membership: Membership, text: str, *, move: bool
) -> Message:
    # The platform opens the private thread from the public item (Meta private reply).
    # Alone (the public limit used up), it is the move to private itself, and says
    # so in its kind, so the thread shows it and a rollup rebuild counts it as one.
    return _queue(
        conversation,
        membership,
        text,
        Visibility.PRIVATE,
        Message.Kind.PRIVATE_INVITE if move else Message.Kind.REPLY,
        move=move,
    )


def retry_failed_message(message: Message, *, membership: Membership) -> Message:
    """Queue a failed reply again (now, no new hold). The public limit applies again."""
    with transaction.atomic():
        locked = _locked_outbound(message, membership)
        if locked.delivery_status != Delivery.FAILED:
            raise MessageNotEditable("Only a failed reply can be retried.")
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("brand")
            .get(pk=locked.conversation_id)
        )
        if locked.visibility == Visibility.PUBLIC:
            _check_public_limit(conversation, membership, "")
            conversation.public_reply_count += 1
            conversation.save(update_fields=["public_reply_count"])
            locked.counts_toward_limit = True
        locked.delivery_status = Delivery.SCHEDULED
        locked.send_after = timezone.now()
        locked.last_error = ""
        locked.claim_token = ""
        locked.save(
            update_fields=[
                "delivery_status",
                "send_after",
                "last_error",
                "counts_toward_limit",
                "claim_token",
            ]
        )
        _emit_message(
            locked, "message.updated", changed={"delivery_status": "scheduled"}
        )
        schedule_delivery(locked)
    return locked
