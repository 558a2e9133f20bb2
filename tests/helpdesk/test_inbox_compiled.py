"""The inbox's compiled first page reads what the ordinary path reads."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.http import Http404

from helpdesk import inbox_compiled
from helpdesk.access import access_conversation_read
from helpdesk.inbox_compiled import first_page
from helpdesk.models import Conversation
from helpdesk.queue import with_queue_order
from helpdesk.selectors import conversation_rows, inbox_conversations
from helpdesk.services.conversations import update_conversation
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db


def _row(conversation: Conversation) -> tuple[Any, ...]:
    return (
        conversation.pk,
        conversation.tenant_id,
        conversation.status,
        conversation.brand.name,
        conversation.social_account.handle,
        conversation.contact.display_name,
        conversation.tag_names,  # type: ignore[attr-defined]
        conversation.assignee_id,
        getattr(conversation, "queue_key", None),
    )


def _ordinary(
    membership: Membership, now: datetime, size: int, **filters: Any
) -> list[Conversation]:
    ordered = with_queue_order(inbox_conversations(membership, **filters), now)
    return list(ordered[: size + 1])


@pytest.fixture
def inbox(tenant: Tenant, owner: User, account: SocialAccount) -> Membership:
    membership = membership_of(tenant, owner)
    second = make_account(tenant, handle="second")
    for n in range(7):
        result = receive(
            account if n % 2 else second,
            item(text=f"Bag {n} lost", author=f"cust-{n}", handle=f"c{n}"),
        )
        if n % 3 == 0:
            with tenant_context(tenant):
                update_conversation(
                    result.conversation,
                    membership=membership,
                    tags=["bags"],
                    assignee=owner,
                )
    return membership


CASES: list[dict[str, Any]] = [
    {},
    {"status": None},
    {"status": "resolved"},
    {"assignee_id": "me"},
    {"unassigned": True},
    {"platform": "sandbox", "origin": "public"},
    {"account_id": "second"},
]


@pytest.mark.parametrize("case", CASES, ids=[str(case) for case in CASES])
@pytest.mark.parametrize("size", [2, 25])
def test_the_first_page_equals_the_ordinary_read(
    tenant: Tenant, inbox: Membership, case: dict[str, Any], size: int
) -> None:
    now = datetime.now(UTC) + timedelta(minutes=3)
    with tenant_context(tenant):
        filters = dict(case)
        if filters.get("assignee_id") == "me":
            filters["assignee_id"] = inbox.user_id
        if filters.get("account_id") == "second":
            filters["account_id"] = SocialAccount.objects.get(handle="second").pk
        expected = _ordinary(inbox, now, size, **filters)
        for _ in range(2):  # compiled, then from the compiled shape
            compiled = first_page(inbox, filters=filters, size=size, now=now)
            assert compiled is not None
            assert [_row(c) for c in compiled] == [_row(c) for c in expected]
    if case in ({}, {"unassigned": True}):
        assert expected, "the case reads rows"


def test_another_workspace_reads_its_own_rows_through_the_same_shape(
    tenant: Tenant, inbox: Membership, other_tenant: Tenant, outsider: User
) -> None:
    now = datetime.now(UTC)
    theirs = membership_of(other_tenant, outsider)
    receive(make_account(other_tenant), item(text="Theirs", author="x"))
    with tenant_context(tenant):
        ours = first_page(inbox, filters={}, size=25, now=now)
    with tenant_context(other_tenant):
        read = first_page(theirs, filters={}, size=25, now=now)
        assert read is not None
        assert [c.tenant_id for c in read] == [other_tenant.pk]
        assert [_row(c) for c in read] == [_row(c) for c in _ordinary(theirs, now, 25)]
    assert ours is not None
    assert {c.tenant_id for c in ours} == {tenant.pk}


def test_a_tag_or_an_unknown_filter_takes_the_ordinary_path(
    tenant: Tenant, inbox: Membership
) -> None:
    now = datetime.now(UTC)
    with tenant_context(tenant):
        assert first_page(inbox, filters={"tag": "bags"}, size=25, now=now) is None
        assert first_page(inbox, filters={"future": 1}, size=25, now=now) is None


def refuse_compiles(
    monkeypatch: pytest.MonkeyPatch, module: Any, make: str, kept: str
) -> None:
    """`module.<make>(key)` compiles as before, but the compiled statement's rows
    raise the ValueError a shape that depends on more than its values gets; the
    module's cache of shapes (`module.<kept>`) starts empty."""
    real = getattr(module, make)

    def refusing(key: Any) -> Any:
        compiled = real(key)

        def rows(*values: Any) -> Any:
            raise ValueError("parameter 3 changes without a value")

        monkeypatch.setattr(compiled, "rows", rows)
        return compiled

    monkeypatch.setattr(module, make, refusing)
    monkeypatch.setattr(module, kept, {})


def test_a_shape_the_compile_refuses_is_read_the_ordinary_way_from_then_on(
    tenant: Tenant, inbox: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_compiles(monkeypatch, inbox_compiled, "_shape", "_SHAPES")
    with tenant_context(tenant):
        now = datetime.now(UTC)
        assert first_page(inbox, filters={}, size=3, now=now) is None
        assert list(inbox_compiled._SHAPES.values()) == [None]


def test_the_read_gate_equals_the_selectors_rows_and_hides_other_workspaces(
    tenant: Tenant, inbox: Membership, other_tenant: Tenant, outsider: User
) -> None:
    with tenant_context(tenant):
        ours = Conversation.objects.order_by("id").values_list("id", flat=True)
        for pk in ours:
            expected = conversation_rows(inbox).get(pk=pk)
            read = access_conversation_read(inbox, pk)
            assert _row(read) == _row(expected)
        first = ours[0]
    theirs = membership_of(other_tenant, outsider)
    with tenant_context(other_tenant), pytest.raises(Http404):
        access_conversation_read(theirs, first)
    with tenant_context(tenant), pytest.raises(Http404):
        access_conversation_read(inbox, 2**31 - 1)
