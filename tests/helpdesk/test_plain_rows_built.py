"""helpdesk.services.bulkrows.build_row and row_loader make the instances Django
makes (`model(**values)`, `Model.from_db`) without `Model.__init__`, and take
Django's own path whenever `__init__` would do more; the inbound message row
(both paths build it with inbound.message_row) is the one Django builds."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from django.db.models import Model
from django.db.models.signals import post_init, pre_init
from django.test import override_settings

from helpdesk import metrics
from helpdesk.models import Contact, Conversation, Identity, Message
from helpdesk.sentiment import read_message
from helpdesk.services import inbound, inbound_batch
from helpdesk.services.bulkrows import build_row, routes_plainly, row_loader
from social.connectors.base import Author, InboundItem
from social.models import SocialAccount, WebhookEvent
from tenants.models import Tenant
from tests.helpdesk.test_inbound_rows import (
    ACCOUNT,
    CONVERSATION,
    IDENTITY,
    TENANT,
    conversation_values,
    identity_values,
    message_values,
    state,
)

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def without_client_ref(
    got: tuple[dict[str, Any], str | None, bool, dict[str, Any]],
) -> tuple[dict[str, Any], str | None, bool, dict[str, Any]]:
    # client_ref's default is a fresh uuid4 for each row.
    assert isinstance(got[0].pop("client_ref"), UUID)
    return got


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Message, message_values),
        (Conversation, conversation_values),
        (Identity, identity_values),
        (Contact, lambda: {"tenant": TENANT, "display_name": "A", "created_at": AT}),
    ],
)
def test_the_built_row_is_the_one_the_model_builds(model: Any, values: Any) -> None:
    expected = state(model(**values()))
    got = state(build_row(model, **values()))
    if model is Message:
        expected, got = without_client_ref(expected), without_client_ref(got)
    assert got == expected
    assert got[2] is True  # adding
    assert got[1] == (None if model is Identity else "default")


def test_related_rows_are_cached_and_made_defaults_made_per_row() -> None:
    message = build_row(Message, **message_values())
    assert message.conversation is CONVERSATION
    assert message.author_identity is IDENTITY
    assert message.account is ACCOUNT
    assert (message.tenant_id, message.conversation_id, message.author_identity_id) == (
        1,
        5,
        7,
    )
    assert message.pk is None
    assert build_row(Message, **message_values()).client_ref != message.client_ref


def test_a_related_row_given_as_none_is_cached_as_none() -> None:
    values = {**identity_values(), "contact": None}
    del values["contact_id"]
    got = build_row(Identity, **values)
    assert state(got) == state(Identity(**values))
    assert got._state.fields_cache == {"contact": None}
    assert got.contact_id is None


def test_an_unsaved_related_row_gets_the_database_as_django_gives_it() -> None:
    tenant = Tenant(pk=3, name="Unsaved")
    expected = Contact(tenant=tenant, display_name="A", created_at=AT)
    assert tenant._state.db == "default"  # Django's descriptor set it
    tenant = Tenant(pk=3, name="Unsaved")
    got = build_row(Contact, tenant=tenant, display_name="A", created_at=AT)
    assert tenant._state.db == "default"
    assert state(got) == state(expected)


def test_refusals_are_the_models_own() -> None:
    with pytest.raises(TypeError, match="unexpected keyword arguments: 'colour'"):
        build_row(Identity, colour="red")
    with pytest.raises(ValueError, match=r'"Message\.conversation" must be a'):
        build_row(Message, **{**message_values(), "conversation": ACCOUNT})


def test_a_field_given_twice_is_settled_as_the_model_settles_it() -> None:
    both = {**message_values(), "tenant_id": 99}
    got = without_client_ref(state(build_row(Message, **both)))
    assert got == without_client_ref(state(Message(**both)))
    assert got[0]["tenant_id"] == Message(**both).tenant_id
    pk_twice = {**identity_values(), "pk": 8}
    assert state(build_row(Identity, **pk_twice)) == state(Identity(**pk_twice))


@pytest.fixture
def init_receiver() -> Iterator[list[Model]]:
    seen: list[Model] = []

    def receiver(sender: Any, instance: Model, **kwargs: Any) -> None:
        seen.append(instance)

    post_init.connect(receiver, weak=False)
    try:
        yield seen
    finally:
        post_init.disconnect(receiver)


# Made before the receiver is connected, as a module's loaders are.
_LOAD_TENANT = row_loader(Tenant, [f.attname for f in Tenant._meta.concrete_fields])


def test_a_receiver_of_the_init_signals_gets_its_call(
    init_receiver: list[Model],
) -> None:
    identity = build_row(Identity, **identity_values())
    loaded = _LOAD_TENANT("default", _tenant_row())
    assert init_receiver == [identity, loaded]


class _WriteRouter:
    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"


def test_a_router_that_picks_databases_takes_the_models_path() -> None:
    assert routes_plainly()  # tenants.routers only routes migrations
    with override_settings(DATABASE_ROUTERS=[_WriteRouter()]):
        assert not routes_plainly()
        got = build_row(Identity, **identity_values())
    assert state(got) == state(Identity(**identity_values()))


def _tenant_row() -> tuple[Any, ...]:
    values = {
        "id": 4,
        "name": "Acme",
        "slug": "acme",
        "created_at": AT,
    }
    return tuple(
        values.get(f.attname, f.get_default()) for f in Tenant._meta.concrete_fields
    )


@pytest.mark.parametrize("model", [Tenant, WebhookEvent])
def test_a_loaded_row_is_the_one_from_db_makes(model: Any) -> None:
    names = [f.attname for f in model._meta.concrete_fields]
    if model is Tenant:
        values = _tenant_row()
    else:
        values = tuple(
            {"id": 9, "body": b"{}", "received_at": AT}.get(name, f.get_default())
            for name, f in zip(names, model._meta.concrete_fields, strict=True)
        )
    got = row_loader(model, names)("default", values)
    expected = model.from_db("default", names, values)
    assert type(got) is model
    assert state(got) == state(expected)
    assert (got._state.adding, got._state.db) == (False, "default")


def _item(**overrides: Any) -> InboundItem:
    values: dict[str, Any] = {
        "platform": "sandbox",
        "external_id": "p-1",
        "author": Author(external_id="a-1", handle="ann", display_name="Ann"),
        "text": "My flight is delayed AGAIN!!! what is going on?",
        "created_at": AT,
        "visibility": "public",
        "thread_ref": "t-1",
        "in_reply_to": "t-1",
        "mentions_account": True,
        "url": "https://sandbox.example/p-1",
    }
    return InboundItem(**{**values, **overrides})


@pytest.mark.parametrize(
    "item",
    [
        _item(),
        _item(visibility="private", kind="direct_message", url="", in_reply_to=""),
        _item(text="Merci, tout va bien maintenant", thread_ref="", in_reply_to=""),
    ],
)
def test_the_inbound_message_row_is_djangos_and_counted_once(
    item: InboundItem, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[str] = []
    monkeypatch.setattr(metrics, "count_ingested", counted.append)
    account = SocialAccount(pk=2, tenant_id=1, brand_id=3, platform="sandbox")
    account._state.adding, account._state.db = False, "default"
    reading = read_message(item.text)
    expected = Message(
        tenant=TENANT,
        conversation=CONVERSATION,
        account=account,
        platform=item.platform,
        direction=Message.Direction.IN,
        visibility=item.visibility,
        kind=Message.Kind.CUSTOMER,
        external_id=item.external_id,
        external_url=item.url,
        in_reply_to_external_id=item.in_reply_to,
        author_identity=IDENTITY,
        text=item.text,
        language=reading.language,
        sentiment_score=reading.score,
        angry=reading.angry,
        created_at=item.created_at,
    )
    args = (TENANT, CONVERSATION, account, IDENTITY, item)
    got = without_client_ref(state(inbound.customer_message(*args)))
    assert got == without_client_ref(state(expected))
    assert got[0]["text"] == item.text
    assert counted == [item.platform]
    # The batch builds the same row and counts its items per batch instead.
    assert inbound_batch.customer_message is inbound.message_row


def test_plain_rows_skip_model_init(monkeypatch: pytest.MonkeyPatch) -> None:
    inits: list[Any] = []
    monkeypatch.setattr(pre_init, "send", lambda sender, **kw: inits.append(sender))
    build_row(Message, **message_values())
    build_row(Conversation, **conversation_values())
    names = [f.attname for f in Tenant._meta.concrete_fields]
    row_loader(Tenant, names)("default", _tenant_row())
    assert inits == []
    Identity(**identity_values())
    assert inits == [Identity]
