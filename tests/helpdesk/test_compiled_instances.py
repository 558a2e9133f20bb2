"""helpdesk.compiled makes its rows' instances without Model.__init__: the same
instances as the queryset's, and __init__ itself whenever that could differ."""

from typing import Any

import pytest
from django.db.models import F, Model
from django.db.models.signals import post_init

from helpdesk.compiled import CompiledQuery
from helpdesk.models import Conversation
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.helpdesk.conftest import item, receive

pytestmark = pytest.mark.django_db(transaction=True)


def _conversations(status: str) -> Any:
    return (
        Conversation.objects.select_related(
            "brand__tenant", "social_account", "assignee"
        )
        .filter(status=status)
        .order_by("id")
    )


CONVERSATIONS = CompiledQuery(_conversations, [str])
ONLY = ("id", "status", "brand__name", "brand__tenant", "social_account", "assignee")


def _lean(status: str) -> Any:
    return _conversations(status).only(*ONLY)


LEAN = CompiledQuery(_lean, [str])


def state(instance: Model | None) -> Any:
    if instance is None:
        return None
    stored = {k: v for k, v in vars(instance).items() if k != "_state"}
    return (
        type(instance),
        stored,
        instance._state.adding,
        instance._state.db,
        instance._state.fetch_mode,
        sorted(instance._state.fields_cache),
        instance.get_deferred_fields(),
    )


def states(rows: list[Conversation]) -> list[Any]:
    return [
        (
            state(row),
            state(row.brand),
            state(row.brand.tenant),
            state(row.social_account),
            state(row.assignee),
        )
        for row in rows
    ]


@pytest.fixture
def conversations(tenant: Tenant, owner: User, account: SocialAccount) -> list[int]:
    ids = [
        receive(account, item(text=f"Message {n}", author=f"cust-{n}")).conversation.pk
        for n in range(3)
    ]
    with tenant_context(tenant):
        Conversation.objects.filter(pk=ids[0]).update(assignee=owner)
    return ids


def test_the_instances_are_the_querysets(
    tenant: Tenant, conversations: list[int]
) -> None:
    with tenant_context(tenant):
        compiled = CONVERSATIONS.rows("open")
        expected = list(_conversations("open"))

        assert states(compiled) == states(expected)
        assert [row.pk for row in compiled] == conversations
        assert compiled[0].assignee is not None
        assert compiled[1].assignee is None
        assert compiled[0].brand.tenant == tenant

        # Not "adding": a save updates the row, and a refresh reads it back.
        compiled[1].priority = 9
        compiled[1].save(update_fields=["priority"])
        assert Conversation.objects.get(pk=conversations[1]).priority == 9
        compiled[2].refresh_from_db()
        expected[2].refresh_from_db()
        assert states(compiled[2:]) == states(expected[2:])


def test_a_post_init_receiver_sees_every_instance(
    tenant: Tenant, conversations: list[int]
) -> None:
    seen: list[type[Model]] = []

    def receiver(sender: type[Model], instance: Model, **kwargs: Any) -> None:
        seen.append(sender)

    post_init.connect(receiver)
    try:
        with tenant_context(tenant):
            compiled = CONVERSATIONS.rows("open")
            with_init = list(seen)
            seen.clear()
            expected = list(_conversations("open"))
    finally:
        post_init.disconnect(receiver)

    assert states(compiled) == states(expected)
    assert sorted(with_init, key=str) == sorted(seen, key=str)
    assert with_init.count(Conversation) == 3
    assert with_init.count(Brand) == 3
    assert with_init.count(User) == 1


def test_instances_with_deferred_columns_are_the_querysets(
    tenant: Tenant, conversations: list[int]
) -> None:
    with tenant_context(tenant):
        compiled = LEAN.rows("open")
        expected = list(_lean("open"))

        assert states(compiled) == states(expected)
        assert "priority" in compiled[0].get_deferred_fields()
        assert "timezone" in compiled[0].brand.get_deferred_fields()


def _annotated(status: str) -> Any:
    return (
        _conversations(status)
        .annotate(brand_hours=F("brand__business_hours"), doubled=F("priority") * 2)
        .defer("preview")
    )


ANNOTATED = CompiledQuery(_annotated, [str])


def test_first_makes_the_querysets_first_row(
    tenant: Tenant, conversations: list[int]
) -> None:
    with tenant_context(tenant):
        Brand.objects.update(business_hours={"mon": [["09:00", "17:00"]]})
        for compiled, queryset in (
            (CONVERSATIONS, _conversations),
            (LEAN, _lean),
            (ANNOTATED, _annotated),
        ):
            first = compiled.first("open")
            expected = queryset("open").first()
            assert first is not None
            assert expected is not None
            assert states([first]) == states([expected])
            assert first.pk == conversations[0]
            assert first.assignee is not None
        annotated = ANNOTATED.first("open")
        assert annotated is not None
        assert annotated.brand_hours == {"mon": [["09:00", "17:00"]]}
        assert annotated.doubled == 2 * annotated.priority
        assert "preview" in annotated.get_deferred_fields()
        assert CONVERSATIONS.first("resolved") is None


def test_first_without_an_assignee_and_with_a_post_init_receiver(
    tenant: Tenant, conversations: list[int]
) -> None:
    seen: list[type[Model]] = []

    def receiver(sender: type[Model], instance: Model, **kwargs: Any) -> None:
        seen.append(sender)

    with tenant_context(tenant):
        Conversation.objects.filter(pk=conversations[0]).update(assignee=None)
        plain = CONVERSATIONS.first("open")
        assert plain is not None
        assert plain.assignee is None
        assert states([plain]) == states([_conversations("open").first()])
        post_init.connect(receiver)
        try:
            with_init = CONVERSATIONS.first("open")
        finally:
            post_init.disconnect(receiver)
        assert with_init is not None
        assert states([with_init]) == states([plain])
    # With a receiver, first() takes rows(): every row's instances by __init__.
    assert seen.count(Conversation) == 3
    assert seen.count(Brand) == 3
    assert seen.count(User) == 0
