"""Recording what customers post: one inbound item becomes one message, once."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from helpdesk import events
from helpdesk.models import Conversation, Identity, Message
from helpdesk.sentiment import score_sentiment
from helpdesk.services import rollups, sla
from helpdesk.services.assignment import route_inbound
from helpdesk.services.away import queue_away_reply
from helpdesk.services.contacts import upsert_identity
from social.connectors.base import InboundItem
from social.models import SocialAccount
from tenants.models import Brand, Tenant

Origin = Conversation.Origin
Status = Conversation.Status


@dataclass(frozen=True)
class InboundResult:
    message: Message
    conversation: Conversation
    created: bool  # False when the item had been recorded before (a replay)
    opened: bool = False  # True when the item opened a new conversation


def origin_of(item: InboundItem) -> str:
    """The conversation origin an item implies when the caller does not say."""
    if item.visibility == "private":
        return Origin.DIRECT_MESSAGE
    if item.kind == "review":
        return Origin.REVIEW
    if item.mentions_account:
        return Origin.MENTION
    if item.kind == "comment":
        return Origin.COMMENT
    return Origin.LISTENING


def record_inbound_message(
    account: SocialAccount,
    item: InboundItem,
    *,
    origin: str | None = None,
    away_reply: bool = True,
) -> InboundResult:
    """Record one inbound item for `account`; a replay of the same item is a no-op.

    Call inside the account's tenant context. Upserts the author's identity and
    contact, finds or opens the conversation (public: same contact, account and root
    thread; private: the conversation waiting after "move to private", else the
    contact's private conversation on that account), reopens it if resolved, keeps
    the counters, SLA clock and queue position, and routes it to an agent. Emits
    conversation.created/updated and message.created after commit. Outside the
    brand's business hours the conversation's first customer message also gets the
    automatic away reply (R8, see helpdesk.services.away.queue_away_reply), which
    emits its own message.created and is delivered on commit; `away_reply=False`
    records history without one (the demo's seeded inbox).
    """
    try:
        return _record(account, item, origin, away_reply)
    except IntegrityError:
        # Another worker recorded the same item between our check and our insert;
        # everything this attempt wrote was rolled back with its savepoint.
        duplicate = _existing(item)
        if duplicate is None:
            raise
        return InboundResult(duplicate, duplicate.conversation, created=False)


@transaction.atomic
def _record(
    account: SocialAccount, item: InboundItem, origin: str | None, away_reply: bool
) -> InboundResult:
    tenant: Tenant = account.tenant
    duplicate = _existing(item)
    if duplicate is not None:
        return InboundResult(duplicate, duplicate.conversation, created=False)
    identity = upsert_identity(tenant, item.platform, item.author)
    conversation, opened = _find_or_open(account, identity, item, origin)
    # The brand is the account's (already loaded): no query for it per item.
    conversation.brand = account.brand
    # Both events of this item get their sequence numbers in one statement.
    seq = events.next_seq(tenant.pk, count=2) - 1
    message = Message.objects.create(
        tenant=tenant,
        conversation=conversation,
        account=account,
        platform=item.platform,
        direction=Message.Direction.IN,
        visibility=item.visibility,
        kind=Message.Kind.CUSTOMER,
        external_id=item.external_id,
        external_url=item.url,
        in_reply_to_external_id=item.in_reply_to,
        author_identity=identity,
        text=item.text,
        seq=seq,
        created_at=item.created_at,
    )
    changed = _apply_customer_message(
        conversation, account.brand, identity, item, opened=opened
    )
    rollups.count_inbound(conversation, message)
    changed.update(route_inbound(conversation, opened=opened))
    events.emit(
        tenant.pk,
        "message.created",
        seq=seq,
        conversation_id=conversation.pk,
        brand_id=conversation.brand_id,
        message_id=message.pk,
        changed={"direction": "in", "visibility": item.visibility},
    )
    events.emit(
        tenant.pk,
        "conversation.created" if opened else "conversation.updated",
        seq=seq + 1,
        conversation_id=conversation.pk,
        brand_id=conversation.brand_id,
        changed=sla.jsonable(changed),
    )
    # After the conversation's event, so clients know the thread the reply joins.
    if away_reply:
        queue_away_reply(conversation, item=item, author=identity)
    return InboundResult(message, conversation, created=True, opened=opened)


def _existing(item: InboundItem) -> Message | None:
    return (
        Message.objects.select_related("conversation")
        .filter(platform=item.platform, external_id=item.external_id)
        .first()
    )


def _find_or_open(
    account: SocialAccount, identity: Identity, item: InboundItem, origin: str | None
) -> tuple[Conversation, bool]:
    contact = identity.contact
    # The row found is locked by the same query (the new message updates it).
    mine = Conversation.objects.select_for_update(of=("self",)).filter(
        social_account=account, contact=contact
    )
    if item.visibility == "private":
        existing = (
            mine.filter(awaiting_private=True).order_by("-last_activity_at").first()
            or mine.filter(private_thread_ref=item.thread_ref or item.external_id)
            .order_by("-last_activity_at")
            .first()
            or mine.filter(channel_state=Conversation.ChannelState.PRIVATE)
            .exclude(status=Status.RESOLVED)
            .order_by("-last_activity_at")
            .first()
        )
    else:
        existing = (
            mine.filter(public_thread_ref=item.thread_ref or item.external_id)
            .order_by("-last_activity_at")
            .first()
        )
    if existing is not None:
        return existing, False
    private = item.visibility == "private"
    conversation = Conversation.objects.create(
        tenant=account.tenant,
        brand_id=account.brand_id,
        social_account=account,
        contact=contact,
        platform=item.platform,
        origin=origin or origin_of(item),
        public_thread_ref="" if private else (item.thread_ref or item.external_id),
        private_thread_ref=(item.thread_ref or item.external_id) if private else "",
        channel_state="private" if private else "public",
        mentions_account=item.mentions_account,
        last_activity_at=item.created_at,
        created_at=item.created_at,
    )
    return conversation, True


def _apply_customer_message(
    conversation: Conversation,
    brand: Brand,
    identity: Identity,
    item: InboundItem,
    *,
    opened: bool,
) -> dict[str, object]:
    """Update counters, status, sentiment, the SLA clock and the queue position for
    a new customer message (helpdesk.services.sla.customer_message_clock)."""
    changed: dict[str, object] = {}

    def put(field: str, value: object) -> None:
        if getattr(conversation, field) != value:
            setattr(conversation, field, value)
            changed[field] = value

    put("customer_message_count", conversation.customer_message_count + 1)
    put("last_activity_at", max(conversation.last_activity_at, item.created_at))
    put("last_customer_message_at", item.created_at)
    put("preview", item.text[:280])
    if conversation.first_customer_message_at is None:
        put("first_customer_message_at", item.created_at)
    if item.visibility == "private":
        put("channel_state", Conversation.ChannelState.PRIVATE)
        put("awaiting_private", False)
        if not conversation.private_thread_ref:
            put("private_thread_ref", item.thread_ref or item.external_id)
    if item.mentions_account and not conversation.mentions_account:
        put("mentions_account", True)
    if conversation.status in (Status.RESOLVED, Status.SNOOZED, Status.PENDING):
        put("status", Status.OPEN)
        put("snoozed_until", None)
        put("resolved_at", None)
    sentiment = score_sentiment(item.text)
    if sentiment == "negative" or conversation.customer_message_count == 1:
        put("sentiment", sentiment)
    put("priority", _priority(conversation.sentiment, identity.followers))
    changed.update(
        sla.customer_message_clock(
            conversation,
            brand=brand,
            at=item.created_at,
            followers=identity.followers,
            negative=sentiment == "negative",
            opened=opened,
        )
    )
    conversation.save(update_fields=list(changed))
    return changed


def _priority(sentiment: str, followers: int) -> int:
    """0-3: negative sentiment and reach raise it; it orders ties, never the SLA."""
    return min(
        3, (sentiment == "negative") + (followers >= 10_000) + (followers >= 1_000_000)
    )
