"""sla.record_fact builds its CareFact without Model.__init__ when it may: the
instance, and the row written from it, are those CareFact(...) makes; a
pre_init receiver or a relation given as an object takes Django's way."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db.models.signals import pre_init

from helpdesk.models import CareFact, Contact, Conversation
from helpdesk.services import sla, writebatch
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import make_user, make_workspace

pytestmark = pytest.mark.django_db(transaction=True)

STARTED = datetime(2026, 12, 6, 7, 59, 58, 123456, tzinfo=UTC)
AT = datetime(2026, 12, 6, 8, 0, 1, 654321, tzinfo=UTC)


def _conversation(tenant: Tenant) -> Conversation:
    contact = Contact.objects.create(tenant=tenant, display_name="c")
    return Conversation.objects.create(
        tenant=tenant,
        brand=Brand.objects.get(),
        contact=contact,
        platform="sandbox",
        origin=Conversation.Origin.MENTION,
        public_thread_ref="fact-instance",
        sentiment=Conversation.Sentiment.NEGATIVE,
        sla_lane="urgent",
        follower_band="medium",
    )


def _django_fact(conversation: Conversation, kind: str, **fields: Any) -> CareFact:
    return CareFact(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        kind=kind,
        brand_id=conversation.brand_id,
        account_id=conversation.social_account_id,
        platform=conversation.platform,
        origin=conversation.origin,
        sentiment=conversation.sentiment,
        follower_band=conversation.follower_band,
        lane=conversation.sla_lane,
        started_at=STARTED,
        at=AT,
        **fields,
    )


def _columns(fact: CareFact) -> dict[str, Any]:
    return {k: v for k, v in fact.__dict__.items() if k != "_state"}


def test_the_fact_is_the_instance_django_makes_and_writes_the_same_row() -> None:
    tenant = make_workspace("Fact Instance")
    with tenant_context(tenant):
        conversation = _conversation(tenant)
        expected = _django_fact(conversation, "opened", off_hours=True)
        with writebatch.write_batch():
            fact = sla.record_fact(
                conversation, "opened", started_at=STARTED, at=AT, off_hours=True
            )
            unsaved = _columns(fact)
            adding, db = fact._state.adding, fact._state.db
        expected.save(force_insert=True)
        stored = list(
            CareFact.objects.order_by("pk").values_list(
                *(f.attname for f in CareFact._meta.concrete_fields if f.name != "id")
            )
        )

    assert sla._fact_shape()[0]  # CareFact takes the way without __init__
    assert type(fact) is CareFact
    assert unsaved == {**_columns(expected), "id": None}
    assert (adding, db) == (True, None)
    assert fact.conversation is conversation
    assert fact._state.fields_cache == {"conversation": conversation}
    assert len(stored) == 2
    assert stored[0] == stored[1]


def test_a_pre_init_receiver_is_sent_as_django_sends_it() -> None:
    tenant = make_workspace("Fact Receiver")
    seen: list[dict[str, Any]] = []

    def receiver(sender: type, **kwargs: Any) -> None:
        if sender is CareFact:
            seen.append(dict(kwargs["kwargs"]))  # __init__ pops from it

    with tenant_context(tenant):
        conversation = _conversation(tenant)
        pre_init.connect(receiver)
        try:
            with writebatch.write_batch():
                fact = sla.record_fact(
                    conversation, "opened", started_at=STARTED, at=AT
                )
        finally:
            pre_init.disconnect(receiver)
        assert CareFact.objects.count() == 1

    assert len(seen) == 1
    assert seen[0]["conversation"] is conversation
    assert _columns(fact) == _columns(_django_fact(conversation, "opened"))


def test_a_relation_given_as_an_object_takes_django_init() -> None:
    tenant = make_workspace("Fact Agent")
    agent: User = make_user("fact-agent@example.com")
    with tenant_context(tenant):
        conversation = _conversation(tenant)
        fact = sla.record_fact(
            conversation,
            "first_response",
            started_at=STARTED,
            at=AT,
            agent=agent,
            raw_seconds=3,
        )
        stored = CareFact.objects.get()

    assert fact.agent is agent
    assert fact.agent_id == agent.pk
    assert (stored.agent_id, stored.raw_seconds, stored.kind) == (
        agent.pk,
        3,
        "first_response",
    )
