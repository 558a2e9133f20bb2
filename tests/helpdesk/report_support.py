"""Constructed conversations and care facts for the rollup and report tests.

Facts are created directly (not through the SLA engine) with exact values, then
applied to the rollups with `apply_fact`, as the engine does.
"""

import itertools
from datetime import datetime
from typing import Any

from helpdesk.models import CareFact, Contact, Conversation, Message
from helpdesk.services.rollups import apply_fact, count_inbound, count_reply
from tenants.context import tenant_context
from tenants.models import Brand, Tenant

_ids = itertools.count(1)


def first_brand(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.order_by("id")[0]


def make_conversation(
    tenant: Tenant,
    *,
    brand: Brand | None = None,
    platform: str = "x",
    origin: str = "mention",
    sentiment: str = "neutral",
    follower_band: str = "small",
    created_at: datetime | None = None,
) -> Conversation:
    """A bare conversation (no messages) with the given dimensions."""
    with tenant_context(tenant):
        brand = brand or Brand.objects.order_by("id")[0]
        contact = Contact.objects.create(display_name=f"Customer {next(_ids)}")
        extra: dict[str, Any] = {}
        if created_at is not None:
            extra = {"created_at": created_at, "first_customer_message_at": created_at}
        return Conversation.objects.create(
            brand=brand,
            contact=contact,
            platform=platform,
            origin=origin,
            sentiment=sentiment,
            follower_band=follower_band,
            **extra,
        )


def make_fact(
    conversation: Conversation,
    kind: str,
    started_at: datetime,
    *,
    apply: bool = True,
    **fields: Any,
) -> CareFact:
    """A fact with the conversation's dimensions; applied to the rollups by default."""
    with tenant_context(conversation.tenant_id):
        fact = CareFact.objects.create(
            conversation=conversation,
            kind=kind,
            brand_id=conversation.brand_id,
            account_id=conversation.social_account_id,
            platform=conversation.platform,
            origin=conversation.origin,
            sentiment=conversation.sentiment,
            follower_band=conversation.follower_band,
            lane=fields.pop("lane", "normal"),
            started_at=started_at,
            at=fields.pop("at", started_at),
            **fields,
        )
        if apply:
            apply_fact(fact)
    return fact


def make_message(
    conversation: Conversation,
    at: datetime,
    *,
    kind: str = "customer",
    agent_id: int | None = None,
    apply: bool = True,
) -> Message:
    """A customer message (or an agent's reply/private invite), counted by default."""
    inbound = kind == "customer"
    with tenant_context(conversation.tenant_id):
        message = Message.objects.create(
            conversation=conversation,
            platform=conversation.platform,
            direction="in" if inbound else "out",
            visibility="private" if kind == "private_invite" else "public",
            kind=kind,
            author_agent_id=agent_id,
            text="hello",
            created_at=at,
        )
        if apply:
            if inbound:
                count_inbound(conversation, message)
            elif kind in {"reply", "private_invite"}:
                count_reply(message, move_to_private=kind == "private_invite")
    return message
