"""helpdesk.services.bulkrows.build_row (the inbound and reply rows) builds the
instance `model(**values)` builds: the same field values, defaults, related rows
cached, database and state."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from django.db.models import Model
from django.db.models.signals import post_init, pre_init

from helpdesk.models import Conversation, Identity, Message
from helpdesk.services.bulkrows import build_row as new_row
from social.models import SocialAccount
from tenants.models import Tenant

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def saved[Row: Model](row: Row) -> Row:
    row._state.adding = False
    row._state.db = "default"
    return row


def state(row: Model) -> tuple[dict[str, Any], str | None, bool, dict[str, Any]]:
    values = {name: value for name, value in vars(row).items() if name != "_state"}
    return values, row._state.db, row._state.adding, dict(row._state.fields_cache)


TENANT = saved(Tenant(pk=1, name="Acme"))
ACCOUNT = saved(SocialAccount(pk=2, tenant_id=1, brand_id=3, platform="api"))
CONVERSATION = saved(Conversation(pk=5, tenant_id=1, brand_id=3))
IDENTITY = saved(Identity(pk=7, tenant_id=1, contact_id=9, platform="api"))


def message_values() -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "conversation": CONVERSATION,
        "account": ACCOUNT,
        "platform": "api",
        "direction": Message.Direction.IN,
        "visibility": "private",
        "kind": Message.Kind.CUSTOMER,
        "external_id": "m-1",
        "external_url": "",
        "in_reply_to_external_id": "",
        "author_identity": IDENTITY,
        "text": "Where is my order?",
        "language": "en",
        "sentiment_score": -0.1,
        "angry": False,
        "created_at": AT,
    }


def conversation_values() -> dict[str, Any]:
    return {
        "pk": 11,
        "tenant": TENANT,
        "brand_id": 3,
        "social_account": ACCOUNT,
        "contact_id": 9,
        "platform": "api",
        "origin": Conversation.Origin.DIRECT_MESSAGE,
        "public_thread_ref": "",
        "private_thread_ref": "author-1",
        "channel_state": "private",
        "mentions_account": False,
        "last_activity_at": AT,
        "created_at": AT,
    }


def identity_values() -> dict[str, Any]:
    return {
        "tenant_id": 1,
        "platform": "api",
        "external_id": "author-1",
        "id": 7,
        "contact_id": 9,
        "handle": "@a",
        "display_name": "A",
        "followers": 12,
        "profile_url": "",
        "created_at": AT,
    }


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Message, message_values),
        (Conversation, conversation_values),
        (Identity, identity_values),
    ],
)
def test_the_row_is_the_one_the_model_builds(model: Any, values: Any) -> None:
    expected = state(model(**values()))
    got = state(new_row(model, **values()))
    if model is Message:  # client_ref's default, a fresh uuid4 for each row
        assert isinstance(expected[0].pop("client_ref"), UUID)
        assert isinstance(got[0].pop("client_ref"), UUID)
    assert got == expected
    # The related rows' descriptors set the database (an identity has none).
    assert got[1] == (None if model is Identity else "default")


def test_related_rows_are_cached_and_their_keys_set() -> None:
    message = new_row(Message, **message_values())
    assert message.conversation is CONVERSATION
    assert message.author_identity is IDENTITY
    assert (message.tenant_id, message.conversation_id, message.account_id) == (
        1,
        5,
        2,
    )
    assert message.author_identity_id == 7
    assert message.pk is None
    # A default made by a function is made for each row.
    assert new_row(Message, **message_values()).client_ref != message.client_ref
    conversation = new_row(Conversation, **conversation_values())
    assert (conversation.pk, conversation.social_account) == (11, ACCOUNT)
    assert conversation.status == Conversation.Status.OPEN  # a default


def test_an_unknown_keyword_is_refused_as_the_model_refuses_it() -> None:
    with pytest.raises(TypeError, match="unexpected keyword arguments: 'colour'"):
        Identity(**{"colour": "red"})
    with pytest.raises(TypeError, match="unexpected keyword arguments: 'colour'"):
        new_row(Identity, colour="red")


@pytest.mark.parametrize("signal", [pre_init, post_init])
def test_with_an_init_receiver_the_model_builds_the_row(signal: Any) -> None:
    """The plain path (no `__init__`) is left while anyone listens for it."""
    seen: list[Any] = []

    def listen(sender: Any, **kwargs: Any) -> None:
        seen.append((sender, kwargs.get("instance")))

    signal.connect(listen, sender=Identity)
    try:
        row = new_row(Identity, **identity_values())
    finally:
        signal.disconnect(listen, sender=Identity)
    assert [sender for sender, _ in seen] == [Identity]
    if signal is post_init:
        assert seen[0][1] is row
    assert state(row) == state(Identity(**identity_values()))


def recorded_inits(monkeypatch: pytest.MonkeyPatch) -> list[type[Model]]:
    """The models whose `Model.__init__` runs from now on, in order."""
    built: list[type[Model]] = []
    real = Model.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(type(self))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Model, "__init__", init)
    return built


def test_without_receivers_init_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    built = recorded_inits(monkeypatch)
    for model, values in (
        (Message, message_values),
        (Conversation, conversation_values),
        (Identity, identity_values),
    ):
        new_row(model, **values())
    assert built == []
