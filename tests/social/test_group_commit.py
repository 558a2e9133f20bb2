"""Group commit of webhook deliveries (social/group_commit.py, issue 12 item 6).

Concurrent deliveries reach the real ASGI fast path in-process (httpx's ASGI
transport, one event loop). So that the deliveries of a test land in one group
whatever the machine's speed, a group waits up to WEBHOOK_GROUP_WINDOW_MS (raised
to 5 s) for its WEBHOOK_GROUP_MAX_ROWS (set to the test's count) deliveries. The
groups the committer formed are recorded, so each test also proves it grouped.
"""

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from celery.signals import before_task_publish
from django.core.asgi import get_asgi_application
from django.db import (
    DataError,
    IntegrityError,
    OperationalError,
    connection,
    transaction,
)
from django.db.backends.utils import CursorWrapper
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from helpdesk.celery import app as celery_app
from social import group_commit, tasks, webhooks
from social.models import SocialAccount, WebhookEvent
from social.publishing import publish_events
from social.webhook_asgi import WebhookFastPath
from social.webhooks import Delivery, Stored, store_deliveries
from tests.helpdesk.live import real_broker
from tests.social.test_webhook_asgi import signed
from tests.social.test_webhooks import post_event
from tests.social.test_webhooks import routed as routed

pytestmark = pytest.mark.django_db(transaction=True)

ACCEPTED = (200, {"status": "accepted"})
STORE_FAILED = "the delivery could not be stored right now; retry later"


@pytest.fixture(autouse=True)
def plain_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with the plain INSERT first (no replay seen before)."""
    monkeypatch.setattr(webhooks, "_skip_conflicts_for", 0)


@pytest.fixture
def groups(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every group the committer stores; one window holds a test."""
    settings.WEBHOOK_GROUP_WINDOW_MS = 5000
    sizes: list[int] = []
    store = store_deliveries

    def recorded(deliveries: list[Delivery], **options: Any) -> list[Stored]:
        sizes.append(len(deliveries))
        return store(deliveries, **options)

    monkeypatch.setattr(group_commit, "store_deliveries", recorded)
    return sizes


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The events queued for processing (the tasks themselves do not run)."""
    ids: list[int] = []
    monkeypatch.setattr(tasks.process_webhook_event, "delay", ids.append)
    return ids


def post_all(
    requests: list[tuple[bytes, dict[str, str]]],
) -> list[tuple[int, dict[str, Any], str]]:
    """POST every (body, headers) at once: (status, JSON, Retry-After) of each."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=WebhookFastPath(get_asgi_application()))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            return await asyncio.gather(
                *(
                    client.post("/hooks/sandbox/", content=body, headers=headers)
                    for body, headers in requests
                )
            )

    return [
        (r.status_code, r.json(), r.headers.get("retry-after", ""))
        for r in asyncio.run(run())
    ]


def test_concurrent_deliveries_are_stored_by_one_insert_and_all_acknowledged(
    routed: SocialAccount, groups: list[int], queued: list[int], settings: Settings
) -> None:
    settings.WEBHOOK_GROUP_MAX_ROWS = 12
    requests = [signed(post_event("100", text=f"@acmeair {n}")) for n in range(12)]

    answers = post_all(requests)

    assert [(status, body) for status, body, _ in answers] == [ACCEPTED] * 12
    assert groups == [12]
    events = WebhookEvent.objects.order_by("pk")
    assert [bytes(event.body) for event in events] == [body for body, _ in requests]
    assert {event.status for event in events} == {"received"}
    assert sorted(queued) == [event.pk for event in events]


def test_a_failed_group_insert_refuses_every_delivery_and_stores_none(
    routed: SocialAccount,
    groups: list[int],
    queued: list[int],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
) -> None:
    settings.WEBHOOK_GROUP_MAX_ROWS = 8
    execute = CursorWrapper.execute

    def database_down(self: CursorWrapper, sql: str, params: Any = None) -> Any:
        if sql.startswith('INSERT INTO "social_webhookevent"'):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(self, sql, params)

    with monkeypatch.context() as patch:
        patch.setattr(CursorWrapper, "execute", database_down)
        answers = post_all([signed(post_event("100")) for _ in range(8)])

    assert answers == [(503, {"error": STORE_FAILED}, "30")] * 8
    assert groups == [8]
    assert WebhookEvent.objects.count() == 0
    assert queued == []

    # The committer carries on with a fresh connection.
    settings.WEBHOOK_GROUP_MAX_ROWS = 1
    [again] = post_all([signed(post_event("100"))])
    assert again[:2] == ACCEPTED
    assert WebhookEvent.objects.count() == 1


def test_a_malformed_or_unsigned_delivery_in_the_window_does_not_affect_the_others(
    routed: SocialAccount, groups: list[int], queued: list[int], settings: Settings
) -> None:
    settings.WEBHOOK_GROUP_MAX_ROWS = 6
    good = [signed(post_event("100", text=f"@acmeair {n}")) for n in range(5)]
    malformed = signed({"type": "post.created"})  # signed, but no event_id
    unsigned = (good[0][0], {"X-Sandbox-Signature": "sha256=" + "0" * 64})

    answers = post_all([*good[:2], malformed, unsigned, *good[2:]])

    statuses = [(status, body) for status, body, _ in answers]
    assert statuses == [
        ACCEPTED,
        ACCEPTED,
        (
            400,
            {"error": "not a valid sandbox delivery: the delivery has no 'event_id'"},
        ),
        (401, {"error": "missing or invalid signature"}),
        ACCEPTED,
        ACCEPTED,
        ACCEPTED,
    ]
    assert groups == [6]  # the unsigned one never reached the database
    rows = WebhookEvent.objects.order_by("pk").values_list("body", "status")
    assert [(bytes(body), status) for body, status in rows] == [
        (good[0][0], "received"),
        (good[1][0], "received"),
        (malformed[0], "malformed"),
        *((body, "received") for body, _ in good[2:]),
    ]
    assert len(queued) == 5


def test_two_copies_of_a_delivery_in_one_group_are_one_row_and_one_task(
    routed: SocialAccount, groups: list[int], queued: list[int], settings: Settings
) -> None:
    settings.WEBHOOK_GROUP_MAX_ROWS = 2
    copy = signed(post_event("100"))

    answers = post_all([copy, copy])

    assert [(status, body) for status, body, _ in answers] == [ACCEPTED] * 2
    assert groups == [2]
    event = WebhookEvent.objects.get()
    assert queued == [event.pk]


def _delivery(key: str) -> Delivery:
    body = f'{{"event_id": "{key}"}}'.encode()
    return Delivery("sandbox", key, body, "d" * 64, "", datetime.now(UTC))


def test_a_group_statement_the_database_rejects_writes_no_row() -> None:
    poisoned = [_delivery("a"), _delivery("b\x00"), _delivery("c")]

    with pytest.raises(DataError):
        store_deliveries(poisoned)

    assert WebhookEvent.objects.count() == 0


def test_a_row_the_database_rejects_is_refused_alone() -> None:
    poisoned = [_delivery("a"), _delivery("b\x00"), _delivery("c")]

    answers = group_commit.store_group(poisoned)

    assert [answer.status for answer in answers] == [200, 503, 200]
    keys = WebhookEvent.objects.order_by("pk").values_list("event_key", flat=True)
    assert list(keys) == ["a", "c"]


def test_a_key_postgres_cannot_store_is_kept_by_its_hash(
    routed: SocialAccount, queued: list[int]
) -> None:
    answers = post_all([signed(post_event("100", event_id="nul\x00key"))])

    assert [(status, body) for status, body, _ in answers] == [ACCEPTED]
    event = WebhookEvent.objects.get()
    assert event.event_key.startswith("sha256-")
    assert len(event.event_key) == 71


def test_a_group_is_published_as_what_apply_async_sends_for_its_ids() -> None:
    published: list[dict[str, Any]] = []

    def record(**message: Any) -> None:
        headers = dict(message["headers"])
        for varying in ("id", "root_id", "argsrepr"):
            headers.pop(varying)
        properties = dict(message["properties"])
        properties.pop("correlation_id")
        published.append(
            {
                "body": message["body"],
                "exchange": message["exchange"],
                "routing_key": message["routing_key"],
                "headers": headers,
                "properties": properties,
            }
        )

    before_task_publish.connect(record, weak=False)
    try:
        with real_broker("memory://"):
            tasks.process_webhook_event.apply_async((41, 42, 43))
            publish_events(celery_app, [41, 42, 43])
    finally:
        before_task_publish.disconnect(record)

    assert len(published) == 2
    assert published[1] == published[0]
    assert published[1]["body"][0] == (41, 42, 43)


def test_while_deliveries_wait_committed_ids_are_published_in_whole_messages() -> None:
    committer = group_commit.GroupCommit()
    loop = asyncio.new_event_loop()
    try:
        waiting = group_commit._Waiting(_delivery("next"), loop, loop.create_future())
    finally:
        loop.close()
    slice_ = group_commit.PUBLISH_SLICE
    last = 2 * slice_ + 22  # two whole messages and a part
    committer._due = list(range(1, last + 1))
    committer._waiting.put(waiting)  # the next group is already there

    committer._release_due()

    assert committer._publish.get_nowait() == list(range(1, 2 * slice_ + 1))
    assert committer._publish.empty()
    assert committer._due == list(range(2 * slice_ + 1, last + 1))

    committer._waiting.get_nowait()  # nothing waits now: the rest goes at once
    committer._release_due()

    assert committer._publish.get_nowait() == list(range(2 * slice_ + 1, last + 1))
    assert committer._due == []
    committer._release_due()
    assert committer._publish.empty()


def test_a_burst_is_published_in_messages_of_128_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages: list[list[int]] = []
    monkeypatch.setattr(group_commit, "enqueue_events", messages.append)

    group_commit.GroupCommit._publish_ids(list(range(1, 301)))

    assert messages == [
        list(range(1, 129)),
        list(range(129, 257)),
        list(range(257, 301)),
    ]


def test_the_publisher_takes_the_ids_committed_within_its_linger(
    settings: Settings,
) -> None:
    settings.WEBHOOK_PUBLISH_LINGER_MS = 500
    committer = group_commit.GroupCommit()
    committer._publish.put([1, 2])
    later = threading.Timer(0.02, committer._publish.put, ([3],))
    later.start()
    started = time.monotonic()

    ids = committer._next_ids()

    assert ids == [1, 2, 3]
    assert time.monotonic() - started >= 0.5
    assert committer._publish.empty()


def test_the_publisher_stops_lingering_once_a_message_is_full(
    settings: Settings,
) -> None:
    settings.WEBHOOK_PUBLISH_LINGER_MS = 60_000
    committer = group_commit.GroupCommit()
    slice_ = group_commit.PUBLISH_SLICE
    committer._publish.put(list(range(1, 101)))
    committer._publish.put(list(range(101, slice_ + 11)))
    committer._publish.put([999])

    assert committer._next_ids() == list(range(1, slice_ + 11))
    assert committer._publish.get_nowait() == [999]


def test_without_a_linger_the_publisher_takes_only_what_waits(
    settings: Settings,
) -> None:
    settings.WEBHOOK_PUBLISH_LINGER_MS = 0
    committer = group_commit.GroupCommit()
    committer._publish.put([1, 2])
    committer._publish.put([3])

    assert committer._next_ids() == [1, 2, 3]
    assert committer._publish.empty()


def test_a_large_group_maps_each_new_row_and_replay_to_its_event() -> None:
    stored_before = store_deliveries([_delivery("k-30")])
    group = [_delivery(f"k-{n}") for n in range(60)]  # 420 parameters

    answers = store_deliveries([*group, _delivery("k-7")])

    events = dict(WebhookEvent.objects.values_list("event_key", "pk"))
    assert len(events) == 60
    expected = [
        Stored(200, {"status": "accepted"}, events[f"k-{n}"]) for n in range(60)
    ]
    assert answers == [*expected, Stored(200, {"status": "accepted"})]
    assert stored_before == [expected[30]]


def _inserts(captured: CaptureQueriesContext) -> list[str]:
    """The webhook INSERTs run, as 'plain' or 'on conflict'."""
    return [
        "on conflict" if "ON CONFLICT" in query["sql"] else "plain"
        for query in captured.captured_queries
        if query["sql"].startswith('INSERT INTO "social_webhookevent"')
    ]


def _stored(key: str) -> int:
    """Store one new delivery of `key`: its event's id."""
    [stored] = store_deliveries([_delivery(key)])
    assert stored.queue is not None
    return stored.queue


def test_a_group_of_new_keys_is_one_plain_insert() -> None:
    with CaptureQueriesContext(connection) as captured:
        answers = store_deliveries([_delivery("a"), _delivery("b")])

    events = dict(WebhookEvent.objects.values_list("event_key", "pk"))
    assert answers == [
        Stored(200, {"status": "accepted"}, events["a"]),
        Stored(200, {"status": "accepted"}, events["b"]),
    ]
    assert _inserts(captured) == ["plain"]
    assert len(captured.captured_queries) == 1
    assert webhooks._skip_conflicts_for == 0


def test_a_group_meeting_a_stored_key_is_inserted_again_skipping_conflicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    WebhookEvent.objects.filter(pk=_stored("k-1")).update(status="processed")

    with CaptureQueriesContext(connection) as captured:
        answers = store_deliveries([_delivery("k-0"), _delivery("k-1")])

    events = dict(WebhookEvent.objects.values_list("event_key", "pk"))
    assert answers == [
        Stored(200, {"status": "accepted"}, events["k-0"]),
        Stored(200, {"status": "duplicate"}),
    ]
    assert _inserts(captured) == ["plain", "on conflict"]
    assert WebhookEvent.objects.count() == 2
    assert webhooks._skip_conflicts_for == webhooks.CONFLICT_RUN

    # The next groups skip conflicts at once, one fewer each time.
    with CaptureQueriesContext(connection) as captured:
        store_deliveries([_delivery("k-2")])
        store_deliveries([_delivery("k-3")])
    assert _inserts(captured) == ["on conflict", "on conflict"]
    assert webhooks._skip_conflicts_for == webhooks.CONFLICT_RUN - 2

    # Once the run is over, plain again.
    monkeypatch.setattr(webhooks, "_skip_conflicts_for", 0)
    with CaptureQueriesContext(connection) as captured:
        store_deliveries([_delivery("k-4")])
    assert _inserts(captured) == ["plain"]
    keys = WebhookEvent.objects.order_by("pk").values_list("event_key", flat=True)
    assert list(keys) == ["k-1", "k-0", "k-2", "k-3", "k-4"]


def test_a_stored_key_inside_a_transaction_rolls_back_only_the_failed_insert() -> None:
    first = _stored("k-1")

    with transaction.atomic():
        before = WebhookEvent.objects.create(
            platform="sandbox", event_key="k-before", body=b"{}", headers_digest=""
        )
        answers = store_deliveries([_delivery("k-1"), _delivery("k-2")])
        after = WebhookEvent.objects.create(
            platform="sandbox", event_key="k-after", body=b"{}", headers_digest=""
        )

    events = dict(WebhookEvent.objects.values_list("event_key", "pk"))
    assert answers == [
        Stored(200, {"status": "accepted"}, first),
        Stored(200, {"status": "accepted"}, events["k-2"]),
    ]
    assert sorted(events) == ["k-1", "k-2", "k-after", "k-before"]
    assert events["k-before"] == before.pk
    assert events["k-after"] == after.pk


def test_a_unique_violation_of_another_key_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _stored("k-1")
    execute = CursorWrapper.execute

    def pk_clash(self: CursorWrapper, sql: str, params: Any = None) -> Any:
        if sql.startswith('INSERT INTO "social_webhookevent"'):
            sql = sql.replace('("platform"', '("id", "platform"', 1).replace(
                "VALUES (%s,", f"VALUES ({first}, %s,", 1
            )
        return execute(self, sql, params)

    with monkeypatch.context() as patch, CaptureQueriesContext(connection) as seen:
        patch.setattr(CursorWrapper, "execute", pk_clash)
        with pytest.raises(IntegrityError, match="social_webhookevent_pkey"):
            store_deliveries([_delivery("k-2")])

    assert _inserts(seen) == ["plain"]
    assert webhooks._skip_conflicts_for == 0
    assert list(WebhookEvent.objects.values_list("event_key", flat=True)) == ["k-1"]


class _RecordingLoop:
    """Stands for an event loop: records what the committer hands it."""

    def __init__(self, *, closed: bool = False) -> None:
        self.closed = closed
        self.calls: list[tuple[Any, ...]] = []

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        if self.closed:
            raise RuntimeError("Event loop is closed")
        self.calls.append((callback, *args))


def _waiting(key: str, loop: Any) -> group_commit._Waiting:
    return group_commit._Waiting(_delivery(key), loop, None)


def test_a_group_of_one_loop_is_handed_back_at_once_in_order() -> None:
    loop = _RecordingLoop()
    items = [_waiting(f"k-{n}", loop) for n in range(3)]
    answers = [Stored(200, {"status": "accepted"}, n) for n in range(3)]

    group_commit.GroupCommit._hand_back(items, answers)

    assert loop.calls == [(group_commit._answer, items, answers)]


def test_a_group_of_several_loops_hands_each_its_own_answers() -> None:
    first, second, closed = _RecordingLoop(), _RecordingLoop(), _RecordingLoop()
    closed.closed = True
    loops = [first, second, closed, first, second]
    items = [_waiting(f"k-{n}", loop) for n, loop in enumerate(loops)]
    answers = [Stored(200, {"status": "accepted"}, n) for n in range(5)]

    group_commit.GroupCommit._hand_back(items, answers)  # a closed loop is skipped

    assert first.calls == [
        (group_commit._answer, [items[0], items[3]], [answers[0], answers[3]])
    ]
    assert second.calls == [
        (group_commit._answer, [items[1], items[4]], [answers[1], answers[4]])
    ]
    assert closed.calls == []


def test_a_group_handed_back_with_a_missing_answer_raises_and_hands_nothing() -> None:
    loop = _RecordingLoop()
    items = [_waiting(f"k-{n}", loop) for n in range(3)]

    with pytest.raises(ValueError, match="2 answers to 3 deliveries"):
        group_commit.GroupCommit._hand_back(items, [webhooks.REFUSED] * 2)

    assert loop.calls == []
