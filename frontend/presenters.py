"""What the conversation pane shows, derived from a conversation and its thread.

Display only. The composer mirrors the reply rules to disable what cannot work and
say why; the services still decide, and their errors are shown when they refuse.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from helpdesk.models import Conversation, Message, NoReplyReason
from helpdesk.services.breaches import sla_state
from helpdesk.services.replies import (
    capabilities_for,
    is_pending_public_answer,
    render_saved_reply,
    with_signature,
)
from social.connectors.base import Capabilities, ConnectorError
from tenants.models import Membership

Visibility = Message.Visibility


@dataclass
class Option:
    value: str
    label: str
    disabled_reason: str = ""

    @property
    def short(self) -> str:
        return self.label.split()[0]


@dataclass
class Composer:
    can_reply: bool
    default_visibility: str
    options: list[Option]
    max_length: int
    signature: str
    limit: int
    used: int
    can_move_private: bool
    move_private_reason: str
    can_open_private: bool
    invite_text: str
    pending_other: Message | None
    pending_mine: Message | None
    saved_replies: list[dict[str, Any]] = field(default_factory=list)
    read_only_reason: str = ""

    @property
    def limit_reached(self) -> bool:
        return self.used >= self.limit


def _capabilities(conversation: Conversation) -> Capabilities | None:
    try:
        return capabilities_for(conversation)
    except ConnectorError:
        return None


def _public_reason(conversation: Conversation, caps: Capabilities) -> str:
    platform = conversation.get_platform_display()
    if not conversation.public_thread_ref:
        return "This conversation has no public thread."
    if not caps.public_reply:
        return f"{platform} does not allow public replies here."
    if caps.public_reply_needs_mention and not conversation.mentions_account:
        return (
            f"{platform} only allows public replies to posts that mention your account."
        )
    limit = conversation.brand.public_reply_limit
    if conversation.public_reply_count >= limit:
        return (
            f"{conversation.public_reply_count} of {limit} public replies used. "
            "Move to private to continue."
        )
    return ""


def _private_reason(conversation: Conversation, caps: Capabilities) -> str:
    platform = conversation.get_platform_display()
    if not caps.private_message:
        return f"{platform} has no private messages."
    public_first = conversation.started_public and conversation.public_reply_count == 0
    if (
        public_first
        and not conversation.awaiting_private
        and not conversation.brand.private_first_allowed
    ):
        return "Answer publicly first, in the channel the customer chose."
    if not conversation.private_thread_ref and not caps.start_private:
        return f"{platform} cannot start a private conversation; use Move to private."
    window = caps.private_reply_window
    last = conversation.last_customer_message_at
    if window is not None and last is not None and timezone.now() - last > window:
        hours = int(window.total_seconds() // 3600)
        return f"{platform}'s {hours}-hour window for private replies has closed."
    return ""


def _pending(messages: list[Message], membership: Membership) -> tuple[Any, Any]:
    mine = other = None
    for message in messages:
        if is_pending_public_answer(message):
            if message.author_agent_id == membership.user_id:
                mine = message
            else:
                other = message
    return mine, other


def signature_for(conversation: Conversation, membership: Membership) -> str:
    """What the brand's signature rule appends to this agent's public replies (R7)."""
    return with_signature(
        "",
        brand=conversation.brand,
        platform=conversation.platform,
        agent=membership.user,
        visibility=Visibility.PUBLIC,
    )


def composer_for(
    conversation: Conversation,
    membership: Membership,
    messages: list[Message],
    saved_replies: list[Any],
) -> Composer:
    """The composer's state for this agent: options, limits, notices, helpers."""
    caps = _capabilities(conversation)
    agent = membership.user
    brand = conversation.brand
    public_reason = _public_reason(conversation, caps) if caps else "No connector."
    private_reason = _private_reason(conversation, caps) if caps else "No connector."
    options = [
        Option(Visibility.PUBLIC, "Public reply", public_reason),
        Option(Visibility.PRIVATE, "Private message", private_reason),
    ]
    default = conversation.channel_state
    if next(o for o in options if o.value == default).disabled_reason:
        enabled = [o.value for o in options if not o.disabled_reason]
        default = enabled[0] if enabled else default
    can_open_private = bool(
        caps and (caps.private_reply_to_public or caps.start_private)
    )
    move_reason = ""
    if conversation.channel_state == Conversation.ChannelState.PRIVATE:
        move_reason = "This conversation is private already."
    elif conversation.public_reply_count >= brand.public_reply_limit and not (
        can_open_private
    ):
        move_reason = (
            "The public reply limit is used and the platform cannot open a private "
            "thread."
        )
    mine, other = _pending(messages, membership)
    read_only = ""
    if not membership.has_role(Membership.Role.AGENT):
        read_only = "You have view-only access to this workspace."
    signature = signature_for(conversation, membership)
    first = (conversation.contact.display_name or "").split()
    invite = (
        f"Hi {first[0] if first else 'there'}, we'd like to help with the details. "
        "Please send us a private message and we'll pick it up right away."
    )
    return Composer(
        can_reply=not read_only and caps is not None,
        default_visibility=default,
        options=options,
        max_length=caps.max_length if caps else 0,
        signature=signature,
        limit=brand.public_reply_limit,
        used=conversation.public_reply_count,
        can_move_private=not move_reason,
        move_private_reason=move_reason,
        can_open_private=can_open_private,
        invite_text=invite,
        pending_other=other,
        pending_mine=mine,
        saved_replies=[
            {
                "id": reply.pk,
                "title": reply.title,
                "text": render_saved_reply(
                    reply.body, conversation=conversation, agent=agent
                ),
            }
            for reply in saved_replies
        ],
        read_only_reason=read_only,
    )


@dataclass
class Entry:
    """One item of the timeline: a message or an internal note."""

    kind: str
    at: datetime
    item: Any


def timeline(messages: list[Message], notes: list[Any]) -> list[Entry]:
    """Messages and notes in one list, oldest first."""
    entries = [Entry("message", m.created_at, m) for m in messages]
    entries += [Entry("note", n.created_at, n) for n in notes]
    return sorted(entries, key=lambda entry: (entry.at, entry.kind == "note"))


@dataclass(frozen=True)
class SlaBadge:
    """What the list row and the thread header show of the SLA clock.

    `due` is the deadline that counts (the response clock's, else the resolution
    target's); `soon` starts its last fifth. The page's clock (js/sla.js)
    re-renders `label` from them every second, with the same wording.
    """

    state: str
    label: str
    title: str
    kind: str
    urgent: bool
    due: datetime | None
    soon: datetime | None


def sla_span(seconds: float, *, up: bool) -> str:
    """A duration as "12 min", "1 h 5 min" or "3 d"; `up` rounds minutes up (time
    left: "1 min" until it is over), else down (time elapsed)."""
    whole = int(seconds // 60) + (1 if up and seconds % 60 else 0)
    if whole < 60:
        return f"{whole} min"
    hours, rest = divmod(whole, 60)
    if hours >= 48:
        return f"{hours // 24} d"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


KIND_TITLES = {
    "first": "First response",
    "next": "Next response",
    "resolution": "Resolution",
}


def sla_badge(conversation: Conversation, now: datetime) -> SlaBadge | None:
    """The SLA badge of `conversation` at `now`, or None when no clock counts.

    Labels: "Due in 12 min", "Due soon · 4 min", "Breached 8 min ago" (from the due
    time), "Paused · 40 min left" (the business time the target has left).
    """
    state = sla_state(conversation, now)
    if state == "none":
        return None
    urgent = conversation.sla_lane == "urgent" and bool(conversation.sla_kind)
    kind = conversation.sla_kind or "resolution"
    due = conversation.sla_due_at if conversation.sla_kind else None
    due = due or (None if conversation.sla_kind else conversation.resolution_due_at)
    soon = conversation.sla_due_soon_at if conversation.sla_kind else None
    title = f"{KIND_TITLES[kind]} target"
    if urgent:
        title += ", urgent lane"
    if state == "paused":
        left = (conversation.sla_target_seconds or 0) - conversation.sla_used_seconds
        label = f"Paused · {sla_span(max(left, 0), up=True)} left"
        return SlaBadge(
            state, label, f"{title}: waiting on the customer", kind, urgent, None, None
        )
    assert due is not None  # noqa: S101 - sla_state found a deadline
    seconds = (due - now).total_seconds()
    if state == "breached":
        ago = -seconds
        label = (
            "Breached just now"
            if ago < 60
            else f"Breached {sla_span(ago, up=False)} ago"
        )
    elif state == "due_soon":
        label = f"Due soon · {sla_span(seconds, up=True)}"
    else:
        label = f"Due in {sla_span(seconds, up=True)}"
    return SlaBadge(state, label, title, kind, urgent, due, soon)


def offers_no_reply(conversation: Conversation, membership: Membership) -> bool:
    """Whether the thread offers "No reply needed": to agents and above, while the
    conversation awaits its first answer (a customer wrote, nobody answered, not
    marked yet, not resolved). The service decides again when it is used."""
    return (
        membership.has_role(Membership.Role.AGENT)
        and conversation.first_customer_message_at is not None
        and conversation.first_response_at is None
        and not conversation.no_reply_reason
        and conversation.status != Conversation.Status.RESOLVED
    )


NO_REPLY_CHOICES = NoReplyReason.choices
