"""The inbox queue order (R10), as a property: reach or sentiment moves a conversation
forward only within its brand's window, never past one breached or due first.

The pure order (helpdesk.queue.queue_order) is checked on random inboxes; the SQL
order of inbox_conversations is checked against it on real rows; the API's cursor
keeps the first page's time so later pages sort by the same key.
"""

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from helpdesk.models import Contact, Conversation
from helpdesk.pagination import inbox_page
from helpdesk.queue import KEY, QueueItem, _Scalar, item_of, key_time, queue_order
from helpdesk.selectors import inbox_conversations
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.api_clients import base, session
from tests.factories import membership_of

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WINDOWS = (0, 5, 15)


@st.composite
def inboxes(draw: st.DrawFn, *, max_size: int = 30) -> list[QueueItem]:
    """Conversations with due times from 3 h ago to 3 h ahead (to the second), a
    bonus from 0 to the window, windows of 0-15 minutes; some answered."""
    count = draw(st.integers(min_value=0, max_value=max_size))
    items = []
    for pk in range(1, count + 1):
        window = timedelta(minutes=draw(st.sampled_from(WINDOWS)))
        activity = NOW - timedelta(seconds=draw(st.integers(0, 7200)))
        if draw(st.integers(0, 9)) == 0:
            items.append(QueueItem(pk, None, None, window, activity))
            continue
        # Coarse due times make ties (equal keys and equal due times) common.
        due = NOW + timedelta(seconds=draw(st.integers(-180, 180)) * 60)
        bonus = timedelta(seconds=draw(st.integers(0, int(window.total_seconds()))))
        items.append(QueueItem(pk, due, due - bonus, window, activity))
    return items


def violations(order: list[QueueItem], now: datetime) -> list[str]:
    """Every pair where B, placed before A, breaks R10 although A is due first."""
    found = []
    for b_index, b in enumerate(order):
        for a in order[b_index + 1 :]:
            if a.due is None or b.due is None or not a.due < b.due:
                continue
            if a.due <= now:
                found.append(f"{b.id} passed {a.id}, which is breached")
            if a.due <= now + b.window:
                found.append(f"{b.id} passed {a.id}, at risk within {b.id}'s window")
            if b.due - a.due > b.window:
                found.append(f"{b.id} moved more than its window past {a.id}")
    return found


@settings(max_examples=400, deadline=None)
@given(inboxes())
def test_nothing_moves_past_a_breach_or_more_than_its_window(
    items: list[QueueItem],
) -> None:
    order = queue_order(items, NOW)

    assert violations(order, NOW) == []
    clocked = [item.due is not None for item in order]
    assert clocked == sorted(clocked, reverse=True)
    answered = [item for item in order if item.due is None]
    assert answered == sorted(
        answered, key=lambda i: (-i.last_activity.timestamp(), i.id)
    )


@settings(max_examples=200, deadline=None)
@given(inboxes(), st.integers(-600, 600))
def test_the_key_never_passes_the_due_time_nor_the_window(
    items: list[QueueItem], shift_seconds: int
) -> None:
    now = NOW + timedelta(seconds=shift_seconds)
    for item in items:
        key = key_time(item, now)
        if item.due is None:
            assert key is None
            continue
        assert key is not None
        assert item.due - item.window <= key <= item.due
        if item.due <= now + item.window:
            assert key == item.due


def test_a_worked_example_in_exact_order() -> None:
    minute = timedelta(minutes=1)
    five = 5 * minute
    breached = QueueItem(1, NOW - 10 * minute, NOW - 10 * minute, five, NOW)
    at_risk = QueueItem(2, NOW + 4 * minute, NOW + 4 * minute, five, NOW)
    # Due 2 minutes after the at-risk one with the full bonus: it may not pass it.
    famous_close = QueueItem(3, NOW + 6 * minute, NOW + minute, five, NOW)
    plain = QueueItem(4, NOW + 30 * minute, NOW + 30 * minute, five, NOW)
    # Due 3 minutes after `plain`, 5 minutes of bonus: it goes first of the two.
    famous_far = QueueItem(5, NOW + 33 * minute, NOW + 28 * minute, five, NOW)
    # A bonus stored under a wider window than the brand's now counts only 5 min.
    stale_bonus = QueueItem(6, NOW + 40 * minute, NOW + 20 * minute, five, NOW)
    answered_old = QueueItem(7, None, None, five, NOW - 30 * minute)
    answered_new = QueueItem(8, None, None, five, NOW - minute)
    items = [
        answered_old,
        stale_bonus,
        plain,
        famous_far,
        answered_new,
        famous_close,
        at_risk,
        breached,
    ]

    order = queue_order(items, NOW)

    assert [item.id for item in order] == [1, 2, 3, 5, 4, 6, 8, 7]
    assert key_time(famous_close, NOW) == NOW + 5 * minute
    assert key_time(stale_bonus, NOW) == NOW + 35 * minute


# --- the SQL order on real rows ---------------------------------------------------


@pytest.fixture
def brands(tenant: Tenant) -> dict[int, Brand]:
    """One brand per window; the workspace's first brand gets window 0."""
    with tenant_context(tenant):
        first = Brand.objects.order_by("id")[0]
        made = {0: first}
        for window in WINDOWS[1:]:
            made[window] = Brand.objects.create(
                tenant=tenant, name=f"Window {window}", slug=f"window-{window}"
            )
        for window, brand in made.items():
            brand.queue_window_minutes = window
            brand.save(update_fields=["queue_window_minutes"])
    return made


def store(
    tenant: Tenant, brands: dict[int, Brand], items: list[QueueItem]
) -> dict[int, int]:
    """Conversations for `items` (inside the caller's transaction): item id → pk."""
    contact = Contact.objects.create(tenant=tenant, display_name="Customer")
    stored = {}
    for item in items:
        conversation = Conversation.objects.create(
            tenant=tenant,
            brand=brands[int(item.window.total_seconds() // 60)],
            contact=contact,
            platform="sandbox",
            origin=Conversation.Origin.MENTION,
            sla_due_at=item.due,
            queue_at=item.queue_at,
            last_activity_at=item.last_activity,
            created_at=item.last_activity,
        )
        stored[item.id] = conversation.pk
    return stored


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=inboxes(max_size=15), shift_seconds=st.integers(-300, 300))
def test_the_database_orders_as_the_pure_twin(
    tenant: Tenant,
    owner: User,
    brands: dict[int, Brand],
    items: list[QueueItem],
    shift_seconds: int,
) -> None:
    now = NOW + timedelta(seconds=shift_seconds)
    membership = membership_of(tenant, owner)
    with tenant_context(tenant):
        stored = store(tenant, brands, items)
        rows = list(inbox_conversations(membership, status=None, now=now))
        transaction.set_rollback(True)

    # Ids in the database grow with the items' ids, so ties break alike.
    expected = [stored[item.id] for item in queue_order(items, now)]
    assert [row.pk for row in rows] == expected
    assert [item.id for item in queue_order_of(rows, now)] == expected
    for row in rows:
        assert getattr(row, KEY) == key_time(item_of(row), now)


def queue_order_of(rows: list[Conversation], now: datetime) -> list[QueueItem]:
    return queue_order([item_of(row) for row in rows], now)


@pytest.fixture
def shifting(tenant: Tenant, brands: dict[int, Brand]) -> list[int]:
    """In the 5-minute brand: A due NOW+20 with the full bonus (key NOW+15), B due
    NOW+16 without one, and one answered conversation."""
    minute = timedelta(minutes=1)
    items = [
        QueueItem(1, NOW + 20 * minute, NOW + 15 * minute, 5 * minute, NOW),
        QueueItem(2, NOW + 16 * minute, NOW + 16 * minute, 5 * minute, NOW),
        QueueItem(3, None, None, 5 * minute, NOW - minute),
    ]
    with tenant_context(tenant):
        stored = store(tenant, brands, items)
    return [stored[item.id] for item in items]


def walk(client: APIClient, url: str | None, *, shift: timedelta) -> list[list[int]]:
    pages: list[list[int]] = []
    with time_machine.travel(NOW, tick=False) as clock:
        while url and len(pages) < 5:
            response = client.get(url)
            assert response.status_code == 200
            pages.append([row["id"] for row in response.json()["results"]])
            url = response.json()["next"]
            clock.shift(shift)
    return pages


@pytest.mark.django_db
def test_later_pages_sort_by_the_first_pages_time(
    tenant: Tenant, agent: User, shifting: list[int]
) -> None:
    a, b, answered = shifting
    url = f"{base(tenant)}/conversations/?page_size=1"

    # 14 minutes later B is at risk (key NOW+16) and A is not (key NOW+19): keyed
    # anew, page 2 would show B and page 3 A again. The cursor keeps NOW.
    pages = walk(session(agent), url, shift=timedelta(minutes=14))

    assert pages == [[a], [b], [answered]]


def cursor_of(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [
        [None, None, None, "2026-03-10T11:59:00+00:00", 1],
        ["2026-03-10T12:00:00", None, None, "2026-03-10T11:59:00+00:00", 1],
        ["2026-03-10T12:00:00+00:00", "2026-03-10T12:00:00+00:00", None, None, 1],
        ["2026-03-10T12:00:00+00:00", None, None, None, 1],
        ["2026-03-10T12:00:00+00:00", None, None, "2026-03-10T11:59:00+00:00"],
        {"now": "2026-03-10T12:00:00+00:00"},
    ],
)
def test_a_cursor_it_did_not_write_is_refused(
    tenant: Tenant, agent: User, shifting: list[int], data: object
) -> None:
    response = session(agent).get(
        f"{base(tenant)}/conversations/?cursor={cursor_of(data)}"
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {"cursor": ["This cursor is not valid."]}


@pytest.mark.django_db
def test_a_written_cursor_round_trips(
    tenant: Tenant, agent: User, shifting: list[int]
) -> None:
    a, b, answered = shifting
    data = [NOW.isoformat(), None, None, (NOW - timedelta(minutes=1)).isoformat(), 0]
    url = f"{base(tenant)}/conversations/?cursor={cursor_of(data)}"

    # Past the waiting ones, at the answered one's activity time, before its id.
    assert walk(session(agent), url, shift=timedelta(0)) == [[answered]]
    assert a < b < answered


# --- slices read only the candidates ----------------------------------------------


def walk_pages(membership: Membership, size: int, now: datetime) -> list[list[int]]:
    """Every page of inbox_page at `now`, following its cursors."""
    factory = APIRequestFactory()
    pages: list[list[int]] = []
    url = "/conversations/"
    with time_machine.travel(now, tick=False):
        while url and len(pages) < 40:
            request = Request(factory.get(url))
            queryset = inbox_conversations(membership, status=None)
            rows, next_url = inbox_page(queryset, request, size=size)
            pages.append([row.pk for row in rows])
            url = next_url or ""
    return pages


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    items=inboxes(max_size=15),
    shift_seconds=st.integers(-300, 300),
    size=st.integers(1, 4),
)
def test_slices_and_pages_are_the_unbounded_orders_rows(
    tenant: Tenant,
    owner: User,
    brands: dict[int, Brand],
    items: list[QueueItem],
    shift_seconds: int,
    size: int,
) -> None:
    now = NOW + timedelta(seconds=shift_seconds)
    membership = membership_of(tenant, owner)
    with tenant_context(tenant):
        stored = store(tenant, brands, items)
        slices = {
            n: [
                row.pk
                for row in inbox_conversations(membership, status=None, now=now)[:n]
            ]
            for n in (1, 2, 3, 5, 8, 13)
        }
        pages = walk_pages(membership, size, now)
        transaction.set_rollback(True)

    expected = [stored[item.id] for item in queue_order(items, now)]
    assert slices == {n: expected[:n] for n in slices}
    assert [pk for page in pages for pk in page] == expected
    assert all(len(page) == size for page in pages[:-1])


@pytest.fixture
def spread(tenant: Tenant, brands: dict[int, Brand]) -> list[int]:
    """72 waiting conversations due every 5 minutes from NOW+30m to NOW+6h25m, in
    the three brands by turn (windows 0, 5 and 15), each with its full bonus; then
    10 answered ones, a minute apart."""
    minute = timedelta(minutes=1)
    items = []
    for index in range(72):
        window = WINDOWS[index % 3] * minute
        due = NOW + 30 * minute + 5 * index * minute
        items.append(QueueItem(index + 1, due, due - window, window, NOW))
    for index in range(10):
        items.append(
            QueueItem(73 + index, None, None, 0 * minute, NOW - index * minute)
        )
    with tenant_context(tenant):
        stored = store(tenant, brands, items)
    return [stored[item.id] for item in items]


@pytest.mark.django_db
def test_a_slice_sorts_only_the_rows_due_within_the_widest_window_of_the_nth(
    tenant: Tenant, owner: User, spread: list[int]
) -> None:
    membership = membership_of(tenant, owner)
    with tenant_context(tenant):
        ordered = inbox_conversations(membership, now=NOW)
        # D_5 is the 5th due time, NOW+50m; the widest window is 15 minutes, so
        # the candidates are those due up to NOW+65m: the first 8 by due time.
        candidates = [row.pk for row in ordered.candidates(5).order_by("id")]
        first = [row.pk for row in ordered[:5]]
        everything = [row.pk for row in ordered]
        # Fewer than 80 clock rows: all 72, and the answered ones down to the
        # 80th most recent (all 10 of them).
        wide = ordered.candidates(80).count()
        # Past the clock rows (a cursor on an answered row): only answered rows
        # at or before its activity, down to the 3rd most recent of them.
        answered = ordered.queue_after(None, NOW - 4 * timedelta(minutes=1))
        tail = [row.pk for row in answered.candidates(3).order_by("id")]

    assert candidates == spread[:8]
    assert first == everything[:5]
    # Keys (minutes after NOW): 30, 30, 25, 45, 45, 40, 60, 60 for the 8.
    assert first == [spread[2], spread[0], spread[1], spread[5], spread[3]]
    assert wide == 82
    assert tail == spread[76:79]


@pytest.mark.django_db
def test_a_slice_is_one_statement(
    tenant: Tenant, owner: User, spread: list[int]
) -> None:
    membership = membership_of(tenant, owner)
    with tenant_context(tenant), CaptureQueriesContext(connection) as captured:
        rows = list(inbox_conversations(membership, now=NOW)[:25])
        names = [(row.brand.name, row.contact.display_name) for row in rows]

    assert len(captured.captured_queries) == 1
    assert len(names) == 25
    assert "LIMIT 1 OFFSET 24" in captured.captured_queries[0]["sql"]


@pytest.mark.django_db
def test_a_bound_used_twice_is_compiled_once(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles: list[Any] = []
    compile_sql = SQLCompiler.as_sql

    def counted(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        compiles.append(self.query.model)
        return compile_sql(self, *args, **kwargs)

    with tenant_context(tenant):
        due = Conversation.objects.order_by("-id").values("id")[:1]
        latest = _Scalar(due)
        both = Conversation.objects.filter(id__gte=latest, id__lte=latest)
        monkeypatch.setattr(SQLCompiler, "as_sql", counted)
        sql, params = both.query.sql_with_params()
        again = both.query.sql_with_params()
        monkeypatch.undo()
        inner, inner_params = due.query.sql_with_params()

    # The statement, its bound once, then the statement again (the bound kept).
    assert compiles == [Conversation, Conversation, Conversation]
    assert sql.count(f"({inner})") == 2
    assert list(params).count(tenant.pk) == 1 + 2 * inner_params.count(tenant.pk)
    assert again == (sql, params)
