"""Saying when the team is back (R8): the automatic away reply.

Outside a brand's business hours, the first customer message of a conversation gets
one automatic reply, in the channel the customer used, saying when the team is
back. Like every public brand post it counts toward the thread's public reply
limit (R3) and waits the brand's hold, during which an agent may undo it (R5). It
is not an agent's answer, so:
- it carries no signature (R7): no agent wrote it;
- it does not stop the response clock: `first_response_at`, the SLA due time and the
  queue position stay as they were, so an agent must still answer (R9, R10);
- it does not hold back an agent's public answer (R7's one-pending rule);
- it is sent at most once per conversation, only where the platform lets the brand
  answer in that channel, and never to untagged posts found by listening (their
  authors did not address the brand) nor to reviews;
- it answers only items that reach Earshot fresh (AWAY_REPLY_MAX_AGE): the first
  poll of a newly connected account, a backlog after an outage or imported history
  would otherwise send "we are away" to posts hours or days old.
It is delivered like any reply (helpdesk.deliver_message) and shown in the thread as
"Automatic reply" (Message.Kind.AUTO_REPLY).

Deployments can switch it off with the AWAY_REPLIES_ENABLED setting (default on).
"""

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from helpdesk import events
from helpdesk.models import Conversation, Identity, Message
from helpdesk.services.replies import (
    capabilities_for,
    channel_refusal,
    schedule_delivery,
)
from social.connectors.base import ConnectorError, InboundItem
from tenants.hours import is_open, next_change
from tenants.models import Brand

logger = logging.getLogger(__name__)

# The one place the away text is written; {weekday}, {time} and {timezone} are the
# brand's (its next opening, on its wall clock).
AWAY_REPLY_TEXT = (
    "Hi {first_name}, thanks for reaching out. Our team is offline right now and "
    "back {weekday} at {time} ({timezone})."
)
# Listening finds posts that do not address the brand; reviews are not a dialogue.
NO_AWAY_REPLY_ORIGINS = frozenset(
    {Conversation.Origin.LISTENING, Conversation.Origin.REVIEW}
)
# Older items (when recorded) get no away reply; see the module docstring.
AWAY_REPLY_MAX_AGE = timedelta(minutes=30)


def away_reply_text(brand: Brand, *, back: datetime, first_name: str = "") -> str:
    """The away reply for a customer: when `brand` is back, on its own clock."""
    local = back.astimezone(ZoneInfo(brand.timezone))
    return AWAY_REPLY_TEXT.format(
        first_name=first_name or "there",
        weekday=f"{local:%A}",
        time=f"{local:%H:%M}",
        timezone=brand.timezone,
    )


def queue_away_reply(
    conversation: Conversation, *, item: InboundItem, author: Identity
) -> Message | None:
    """Queue the automatic away reply to a just-recorded customer item, if it is due.

    Call inside record_inbound_message's transaction, after the item's message was
    created and the conversation updated (its row locked, `brand` and
    `social_account` loaded). Due when all hold:
    - AWAY_REPLIES_ENABLED is on;
    - the item is the conversation's first customer message;
    - the origin is neither listening nor review;
    - the item is at most AWAY_REPLY_MAX_AGE old;
    - the brand is offline at the item's time and has a next opening that is still
      ahead (an item that arrives after the team is back gets none; a brand with no
      business hours at all has nothing to promise);
    - the platform can answer in the item's channel (channel_refusal) and the text
      fits its length limit.
    Creates a `scheduled` Message (kind auto_reply, visibility of the item, no author
    agent, counted toward the public limit when public, due after the brand's hold);
    the response clock is left as it is. Emits message.created (and
    conversation.updated for the public count) and enqueues helpdesk.deliver_message
    on commit.
    Returns the message, or None when no reply is due.
    """
    text = away_reply_due(conversation, item=item, author=author)
    if text is None:
        return None
    return queue_due_away_reply(conversation, item=item, text=text)


def away_reply_due(
    conversation: Conversation, *, item: InboundItem, author: Identity
) -> str | None:
    """The away reply's text when one is due to the item (queue_away_reply's
    rules), else None. Writes nothing: a caller can tell before its last write
    whether an away reply will follow it."""
    if not settings.AWAY_REPLIES_ENABLED:
        return None
    if conversation.customer_message_count != 1:
        return None
    if conversation.origin in NO_AWAY_REPLY_ORIGINS:
        return None
    brand: Brand = conversation.brand
    now = timezone.now()
    if now - item.created_at > AWAY_REPLY_MAX_AGE:
        return None
    # Open: nothing to promise, and no need to look for the next change (a
    # brand open around the clock walked nine days of edges to find none).
    if is_open(brand, item.created_at):
        return None
    back = next_change(brand, item.created_at)
    if back is None or back <= now:
        return None
    text = away_reply_text(
        brand, back=back, first_name=_first_name(author.display_name)
    )
    if not _can_send(conversation, item.visibility, text):
        return None
    return text


def queue_due_away_reply(
    conversation: Conversation, *, item: InboundItem, text: str
) -> Message:
    """Queue the away reply `away_reply_due` gave for the item (`text`)."""
    # customer_message_count == 1 happens once per conversation (replays are
    # no-ops), so at most one automatic reply is ever queued.
    return _queue(conversation, item.visibility, text, timezone.now())


def _first_name(display_name: str) -> str:
    """The display name's first word when it is plainly a name, else "".

    Display names are the customer's free text: a "name" like "@someone", "#tag" or
    a link would make the brand's reply mention or promote someone else.
    """
    parts = display_name.split()
    first = parts[0].rstrip(",.!") if parts else ""
    plain = first.replace("-", "").replace("'", "").replace("\u2019", "")
    return first if plain.isalpha() and len(first) <= 30 else ""


def _can_send(conversation: Conversation, visibility: str, text: str) -> bool:
    try:
        refusal = channel_refusal(conversation, visibility)
        max_length = capabilities_for(conversation).max_length
    except ConnectorError:
        logger.warning(
            "no away reply for conversation %s: no %s connector",
            conversation.pk,
            conversation.platform,
        )
        return False
    return refusal is None and len(text) <= max_length


def _queue(
    conversation: Conversation, visibility: str, text: str, now: datetime
) -> Message:
    public = visibility == Message.Visibility.PUBLIC
    seq = events.next_seq(conversation.tenant_id)
    message = Message.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        account=conversation.social_account,
        platform=conversation.platform,
        direction=Message.Direction.OUT,
        visibility=visibility,
        kind=Message.Kind.AUTO_REPLY,
        text=text,
        delivery_status=Message.DeliveryStatus.SCHEDULED,
        # A public brand post in the thread like any other (R3), with the brand's
        # undo hold (R5).
        counts_toward_limit=public,
        send_after=now + timedelta(seconds=conversation.brand.send_hold_seconds),
        seq=seq,
        created_at=now,
    )
    events.emit(
        conversation.tenant_id,
        "message.created",
        seq=seq,
        conversation_id=conversation.pk,
        brand_id=conversation.brand_id,
        message_id=message.pk,
        changed={
            "direction": message.direction,
            "visibility": message.visibility,
            "kind": message.kind,
            "delivery_status": message.delivery_status,
            "send_after": message.send_after.isoformat()
            if message.send_after
            else None,
            "author_agent_id": None,
        },
    )
    if public:
        conversation.public_reply_count += 1
        conversation.save(update_fields=["public_reply_count"])
        events.emit(
            conversation.tenant_id,
            "conversation.updated",
            conversation_id=conversation.pk,
            brand_id=conversation.brand_id,
            changed={"public_reply_count": conversation.public_reply_count},
        )
    schedule_delivery(message)
    return message
