"""A first slice of inbox_conversations read in its compiled shape
(helpdesk.selectors._InboxShape, helpdesk.queue.ShapedSlice) sends the statement
and makes the rows the built slice would, and anything else builds."""

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext

from helpdesk import selectors
from helpdesk.models import Conversation, ConversationTag
from helpdesk.queue import QueueQuerySet, ShapedSlice
from helpdesk.selectors import inbox_conversations
from helpdesk.services.conversations import update_conversation
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, make_account, receive
from tests.helpdesk.test_inbox_compiled import refuse_compiles

pytestmark = pytest.mark.django_db


def _row(conversation: Conversation) -> tuple[Any, ...]:
    return (
        conversation.pk,
        conversation.tenant_id,
        conversation.status,
        conversation.preview,
        conversation.brand.name,
        conversation.brand.queue_window_minutes,
        conversation.social_account.handle,
        conversation.contact.display_name,
        conversation.tag_names,  # type: ignore[attr-defined]
        conversation.assignee_id,
        conversation.assignee.email if conversation.assignee else None,
        conversation.queue_key,  # type: ignore[attr-defined]
        conversation.queue_recent,  # type: ignore[attr-defined]
        conversation._state.adding,
        conversation._state.db,
    )


@pytest.fixture
def inbox(tenant: Tenant, owner: User, account: SocialAccount) -> Membership:
    """Nine conversations on two accounts: every third tagged and the owner's,
    two answered (no clock), one resolved."""
    membership = membership_of(tenant, owner)
    second = make_account(tenant, handle="second")
    for n in range(9):
        result = receive(
            account if n % 2 else second,
            item(text=f"Bag {n} lost", author=f"cust-{n}", handle=f"c{n}"),
        )
        with tenant_context(tenant):
            conversation = result.conversation
            if n % 3 == 0:
                update_conversation(
                    conversation, membership=membership, tags=["bags"], assignee=owner
                )
            if n in (4, 7):
                Conversation.objects.filter(pk=conversation.pk).update(
                    sla_due_at=None, queue_at=None
                )
            if n == 8:
                Conversation.objects.filter(pk=conversation.pk).update(
                    status=Conversation.Status.RESOLVED
                )
    return membership


CASES: list[dict[str, Any]] = [
    {},
    {"status": None},
    {"status": "resolved"},
    {"assignee_id": "me"},
    {"unassigned": True},
    {"spreading": True},
    {"platform": "sandbox", "origin": "mention", "language": ""},
    {"account_id": "second", "sentiment": "neutral"},
]


def _filters(case: dict[str, Any], membership: Membership) -> dict[str, Any]:
    filters = dict(case)
    if filters.get("assignee_id") == "me":
        filters["assignee_id"] = membership.user_id
    if filters.get("account_id") == "second":
        filters["account_id"] = SocialAccount.objects.get(handle="second").pk
    return filters


def _read(rows: Any) -> tuple[list[tuple[Any, ...]], list[str]]:
    with CaptureQueriesContext(connection) as captured:
        made = [_row(row) for row in rows]
    return made, [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("case", CASES, ids=[str(case) for case in CASES])
@pytest.mark.parametrize("size", [1, 4, 26])
def test_a_first_slice_sends_the_built_statement_and_makes_its_rows(
    tenant: Tenant,
    inbox: Membership,
    case: dict[str, Any],
    size: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC) + timedelta(minutes=2)
    with tenant_context(tenant):
        filters = _filters(case, inbox)
        # .all() is a clone: no shape, so this slice is built.
        built = inbox_conversations(inbox, now=now, **filters).all()[:size]
        assert not isinstance(built, ShapedSlice)
        expected, expected_sql = _read(built)
        first = inbox_conversations(inbox, now=now, **filters)[:size]
        assert isinstance(first, ShapedSlice)
        shaped, shaped_sql = _read(first)
        # From the compiled shape: nothing of the slice is built.
        monkeypatch.setattr(QueueQuerySet, "candidates", None)
        again, again_sql = _read(inbox_conversations(inbox, now=now, **filters)[:size])

    assert shaped == expected
    assert again == expected
    assert len(expected_sql) == 1
    assert shaped_sql == expected_sql
    assert again_sql == expected_sql
    counts = {"{}": 8, "{'status': None}": 9, "{'status': 'resolved'}": 1}
    if str(case) in counts:
        assert len(expected) == min(size, counts[str(case)])


def test_the_shape_is_compiled_once_per_filters_status_and_size(
    tenant: Tenant, inbox: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "_PAGES", {})
    now = datetime.now(UTC)
    with tenant_context(tenant):
        for _ in range(2):
            list(inbox_conversations(inbox, now=now)[:25])
            list(inbox_conversations(inbox, now=now + timedelta(hours=1))[:25])
            list(inbox_conversations(inbox, now=now)[:3])
            list(inbox_conversations(inbox, status=None, now=now)[:25])
            list(inbox_conversations(inbox, brand_id=1, now=now)[:25])
            list(inbox_conversations(inbox, brand_id=2, now=now)[:25])

    assert sorted(selectors._PAGES, key=str) == sorted(
        [
            ((), "open", False, False, inbox.role, 25),
            ((), "open", False, False, inbox.role, 3),
            ((), None, False, False, inbox.role, 25),
            (("brand_id",), "open", False, False, inbox.role, 25),
        ],
        key=str,
    )
    assert all(compiled is not None for compiled in selectors._PAGES.values())


def test_what_changes_the_queryset_or_its_slice_builds(
    tenant: Tenant, inbox: Membership
) -> None:
    now = datetime.now(UTC)
    with tenant_context(tenant):
        every = [row.pk for row in inbox_conversations(inbox, status=None, now=now)]
        picked = every[2]

        def fresh() -> QueueQuerySet[Conversation]:
            return inbox_conversations(inbox, status=None, now=now)

        filtered = fresh().filter(pk=picked)[:5]
        touched = fresh()
        assert touched.query.where  # whoever holds the query may change it
        offset = fresh()[2:5]
        tagged = inbox_conversations(inbox, status=None, tag=" Bags ", now=now)[:5]
        read = {
            "filtered": filtered,
            "touched": touched[:5],
            "offset": offset,
            "tagged": tagged,
        }
        assert not any(isinstance(page, ShapedSlice) for page in read.values())
        pks = {name: [row.pk for row in page] for name, page in read.items()}
        assert isinstance(fresh()[:5], ShapedSlice)
        bags = set(
            ConversationTag.objects.filter(tag__name="bags").values_list(
                "conversation_id", flat=True
            )
        )

    assert pks == {
        "filtered": [picked],
        "touched": every[:5],
        "offset": every[2:5],
        "tagged": [pk for pk in every if pk in bags][:5],
    }
    assert len(bags) == 3


def test_a_shaped_slice_builds_its_query_when_asked(
    tenant: Tenant, inbox: Membership
) -> None:
    now = datetime.now(UTC)
    with tenant_context(tenant):
        built = inbox_conversations(inbox, now=now).all()[:4]
        expected = [row.pk for row in built]
        sql = str(built.query)
        asked = {
            "count": inbox_conversations(inbox, now=now)[:4].count(),
            "exists": inbox_conversations(inbox, now=now)[:4].exists(),
            "iterator": [
                row.pk for row in inbox_conversations(inbox, now=now)[:4].iterator()
            ],
            "values": list(
                inbox_conversations(inbox, now=now)[:4].values_list("pk", flat=True)
            ),
            "index": inbox_conversations(inbox, now=now)[:4][1].pk,
            "sql": str(inbox_conversations(inbox, now=now)[:4].query),
            "copied": [
                row.pk for row in copy.deepcopy(inbox_conversations(inbox, now=now)[:4])
            ],
        }
        read = inbox_conversations(inbox, now=now)[:4]
        rows = [row.pk for row in read]
        read_sql = str(read.query)  # after its rows: the same statement

    assert asked == {
        "count": 4,
        "exists": True,
        "iterator": expected,
        "values": expected,
        "index": expected[1],
        "sql": sql,
        "copied": expected,
    }
    assert rows == expected
    assert read_sql == sql


def test_a_slice_read_under_another_tenant_reads_what_the_built_one_reads(
    tenant: Tenant, inbox: Membership, other_tenant: Tenant, outsider: User
) -> None:
    receive(make_account(other_tenant), item(text="Theirs", author="x"))
    now = datetime.now(UTC)
    with tenant_context(tenant):
        shaped = inbox_conversations(inbox, now=now)[:25]
        built = QuerySet.__getitem__(
            inbox_conversations(inbox, now=now).candidates(25), slice(25)
        )
        ours = [row.pk for row in inbox_conversations(inbox, now=now)[:25]]
    with tenant_context(other_tenant):
        theirs = membership_of(other_tenant, outsider)
        read = [row.pk for row in shaped]
        expected = [row.pk for row in built]
        own = [row.tenant_id for row in inbox_conversations(theirs, now=now)[:25]]

    assert len(ours) == 8
    assert read == expected == []  # our filter, their row-level security
    assert own == [other_tenant.pk]


def test_a_shape_the_compile_refuses_is_built_from_then_on(
    tenant: Tenant, inbox: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_compiles(monkeypatch, selectors, "_compiled_page", "_PAGES")
    now = datetime.now(UTC)
    with tenant_context(tenant):
        expected = [row.pk for row in inbox_conversations(inbox, now=now).all()[:3]]
        first = [row.pk for row in inbox_conversations(inbox, now=now)[:3]]
        second = [row.pk for row in inbox_conversations(inbox, now=now)[:3]]

    assert first == second == expected
    assert len(expected) == 3
    assert list(selectors._PAGES.values()) == [None]


def test_the_shapes_kept_are_bounded(
    tenant: Tenant, inbox: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "_PAGES", {})
    monkeypatch.setattr(selectors, "_MAX_PAGES", 2)
    now = datetime.now(UTC)
    with tenant_context(tenant):
        expected = [row.pk for row in inbox_conversations(inbox, now=now).all()[:5]]
        read = [
            [row.pk for row in inbox_conversations(inbox, now=now)[:size]]
            for size in (3, 4, 5)
        ]

    assert read == [expected[:3], expected[:4], expected]
    assert [key[-1] for key in selectors._PAGES] == [3, 4]
