"""Batched ingest (social.batch_ingest, helpdesk.services.inbound_batch) leaves what
processing the same deliveries one at a time leaves (invariants 2 and 5).

The property test builds two identical worlds (a workspace with two accounts and
agents, and a second workspace with one account), delivers the same random
Sandbox deliveries to both (duplicates, replies before their thread, private
messages, untagged posts, a malformed body, an item the database refuses), records
them one at a time in the first and in batches in the second, and compares every
row they wrote: identities, contacts, conversations, messages, care facts, rollups,
events and the deliveries' statuses.
"""

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from django.db import DatabaseError, DataError, IntegrityError, OperationalError
from django.utils import timezone
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from helpdesk.models import (
    CareFact,
    Contact,
    Conversation,
    Event,
    EventCounter,
    Identity,
    Message,
)
from helpdesk.models.performance import ReportDailyRollup, ReportRollup
from helpdesk.presence import MemoryPresence
from helpdesk.services import inbound_batch
from social import batch_ingest
from social.connectors.base import TokenSet
from social.ingest import process_one_webhook_event, process_webhook_event
from social.models import SocialAccount, WaitingItem, WebhookEvent
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.counter_row import counter_seen_elsewhere
from tests.factories import add_member, make_user, make_workspace, membership_of
from tests.statements import count_statements

pytestmark = pytest.mark.django_db

_labels = itertools.count()
TEXTS = [
    "@acmeair my bag is lost",
    "this is terrible, awful service, I am furious",
    "thanks, great help!",
    "still waiting...",
]
# Open one minute a week: almost always offline with an opening ahead, so first
# messages get the away reply (when fresh).
RARE_HOURS = {"mon": [["03:00", "03:01"]]}


@dataclass
class World:
    label: str
    tenants: list[Tenant]
    accounts: list[SocialAccount]  # a1, a2 in tenants[0]; b1 in tenants[1]
    agent: User
    users: dict[int, str]


# An item the database refuses. Parsing makes every field storable (a NUL byte is
# dropped, a long name cut), so the refusal is simulated where each path builds
# the item's message row: a DataError, as PostgreSQL raises for a bad value.
POISON = "<poisoned>"


@pytest.fixture(autouse=True)
def _poison_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpdesk.services import inbound, inbound_batch

    def refusing(build: Any) -> Any:
        def refused(*args: Any) -> Any:
            if POISON in args[-1].text:
                raise DataError("invalid byte sequence for encoding UTF8: 0x00")
            return build(*args)

        return refused

    # Each path keeps its own builder (the batch's skips Model.__init__).
    for module in (inbound, inbound_batch):
        monkeypatch.setattr(
            module, "customer_message", refusing(module.customer_message)
        )


def make_world(*, hours: dict[str, Any] | None = None) -> World:
    label = f"w{next(_labels)}"
    owner = make_user(f"{label}-owner@batch.example")
    agent = make_user(f"{label}-agent@batch.example")
    other_owner = make_user(f"{label}-other@batch.example")
    first = make_workspace(f"First {label}", owner=owner)
    add_member(first, agent, Membership.Role.AGENT)
    second = make_workspace(f"Second {label}", owner=other_owner)
    accounts = []
    for tenant, user, names in (
        (first, owner, ("a1", "a2")),
        (second, other_owner, ("b1",)),
    ):
        with tenant_context(tenant):
            brand = Brand.objects.get()
            if hours is not None:
                brand.business_hours = hours
                brand.save(update_fields=["business_hours"])
            for name in names:
                accounts.append(
                    connect_account(
                        membership_of(tenant, user),
                        brand=brand,
                        platform="sandbox",
                        tokens=TokenSet(
                            access_token="t",
                            account_external_id=f"{label}-{name}",
                            handle=name,
                        ),
                    )
                )
    users = {owner.pk: "owner", agent.pk: "agent", other_owner.pk: "other"}
    return World(label, [first, second], accounts, agent, users)


@dataclass(frozen=True)
class Post:
    number: int
    account: int  # 0..2
    author: int
    private: bool
    mentions: bool
    root: int  # the post number of its thread's root (itself: a root)
    text: str
    followers: int
    minute: int
    poison: bool = False


def body(world: World, post: Post, base: datetime) -> bytes:
    account = f"{world.label}-{('a1', 'a2', 'b1')[post.account]}"
    author = {
        "id": f"u{post.author}",
        "handle": f"user{post.author}",
        "name": f"User {post.author}",
        "followers": post.followers,
    }
    at = (base + timedelta(minutes=post.minute)).isoformat()
    text = post.text + (POISON if post.poison else "")
    if post.private:
        return json.dumps(
            {
                "type": "message.created",
                "for_account": {"id": account},
                "message": {
                    "id": f"m{post.number}",
                    "sender": author,
                    "text": text,
                    "thread": f"dm{post.author}",
                    "created_at": at,
                },
            }
        ).encode()
    root = f"p{post.root}"
    return json.dumps(
        {
            "type": "post.created",
            "for_account": {"id": account},
            "mentions_account": post.mentions,
            "post": {
                "id": f"p{post.number}",
                "author": author,
                "text": text,
                "in_reply_to": None if post.root == post.number else root,
                "root": root,
                "created_at": at,
            },
        }
    ).encode()


MALFORMED = b'{"type": "post.created", "for_account": {}}'


def store(world: World, bodies: list[bytes], base: datetime) -> list[int]:
    rows = [
        WebhookEvent(
            platform="sandbox",
            event_key=f"{world.label}-{n}",
            body=raw,
            headers_digest="test",
            received_at=base + timedelta(microseconds=n),
        )
        for n, raw in enumerate(bodies)
    ]
    return [row.pk for row in WebhookEvent.objects.bulk_create(rows)]


def one_at_a_time(event_ids: list[int]) -> None:
    for event_id in event_ids:
        try:
            process_one_webhook_event(event_id)
        except DatabaseError:
            # The task retries it until it gives up and marks it failed.
            WebhookEvent.objects.filter(pk=event_id).update(status="failed")


def in_batches(event_ids: list[int], size: int) -> None:
    for event_id in event_ids:
        if WebhookEvent.objects.get(pk=event_id).status != "received":
            continue
        try:
            process_webhook_event(event_id, batch_size=size)
        except DatabaseError:
            WebhookEvent.objects.filter(pk=event_id).update(status="failed")


def snapshot(world: World) -> dict[str, Any]:
    """Every row the deliveries wrote, without ids and world labels."""
    state: dict[str, Any] = {
        "deliveries": list(
            WebhookEvent.objects.filter(event_key__startswith=f"{world.label}-")
            .order_by("received_at")
            .values_list("status", "items")
        )
    }
    for number, tenant in enumerate(world.tenants):
        with tenant_context(tenant):
            state[f"tenant{number}"] = tenant_rows(world)
    return state


def tenant_rows(world: World) -> dict[str, Any]:
    accounts = {a.pk: a.external_id.split("-", 1)[1] for a in world.accounts}
    identities = {i.pk: i for i in Identity.objects.all()}
    # Sorted tuples, not sets: sets order by inclusion, so rows would not sort.
    contact_of: dict[int, tuple[str, ...]] = {}
    for identity in identities.values():
        contact_of[identity.contact_id] = tuple(
            sorted({*contact_of.get(identity.contact_id, ()), identity.external_id})
        )
    conversations = {}
    key_of: dict[int, tuple[Any, ...]] = {}
    skip = {"id", "tenant", "brand", "social_account", "contact"}
    users = {"assignee", "last_answered_by", "no_reply_by"}
    for conversation in Conversation.objects.all():
        key = (
            accounts[conversation.social_account_id or 0],
            contact_of[conversation.contact_id],
            conversation.public_thread_ref,
            conversation.private_thread_ref,
            conversation.created_at,
        )
        key_of[conversation.pk] = key
        fields = {}
        for f in Conversation._meta.concrete_fields:
            if f.name in skip:
                continue
            value = getattr(conversation, f.attname)
            fields[f.name] = world.users.get(value) if f.name in users else value
        conversations[key] = fields
    messages = sorted(
        (
            key_of[m.conversation_id],
            m.external_id or "",
            m.direction,
            m.visibility,
            m.kind,
            m.text,
            m.in_reply_to_external_id,
            identities[m.author_identity_id].external_id
            if m.author_identity_id
            else "",
            m.delivery_status,
            m.counts_toward_limit,
            m.created_at if m.direction == "in" else None,
        )
        for m in Message.objects.all()
    )
    external = {m.pk: m.external_id or m.kind for m in Message.objects.all()}
    events: dict[tuple[Any, ...], list[Any]] = {}
    for event in Event.objects.order_by("seq"):
        payload = dict(event.payload)
        changed = dict(payload.get("changed", {}))
        changed.pop("send_after", None)  # the away reply's: now + hold
        if "assignee_id" in changed:
            changed["assignee_id"] = world.users.get(changed["assignee_id"])
        events.setdefault(key_of[payload["conversation_id"]], []).append(
            (
                event.type,
                changed,
                external.get(payload.get("message_id", 0)),
            )
        )
    return {
        "identities": sorted(
            (i.platform, i.external_id, i.handle, i.display_name, i.followers)
            for i in identities.values()
        ),
        "contacts": sorted(
            (c.display_name, contact_of.get(c.pk, ())) for c in Contact.objects.all()
        ),
        "conversations": conversations,
        "messages": messages,
        "events": events,
        "event_count": sum(len(v) for v in events.values()),
        "counter": list(EventCounter.objects.values_list("value", flat=True)),
        "facts": sorted(
            (
                key_of[f.conversation_id],
                f.kind,
                f.started_at,
                f.at,
                f.off_hours,
                f.sentiment,
                f.follower_band,
                f.lane,
                f.origin,
            )
            for f in CareFact.objects.all()
        ),
        "rollups": sorted(
            rollup_row(row, accounts)
            for model in (ReportRollup, ReportDailyRollup)
            for row in model.objects.all()
        ),
    }


def rollup_row(row: Any, accounts: dict[int, str]) -> tuple[Any, ...]:
    values = []
    for f in type(row)._meta.concrete_fields:
        if f.name in ("id", "tenant", "brand"):
            continue
        value = getattr(row, f.attname)
        if f.name in ("account", "account_id"):
            value = accounts.get(value, value)
        values.append((f.name, value))
    return (type(row).__name__, tuple(values))


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, compared part by part (so a difference names its table)."""
    assert actual.keys() == expected.keys()
    for section, rows in expected.items():
        if not isinstance(rows, dict):
            assert actual[section] == rows, section
            continue
        for part, value in rows.items():
            got = actual[section][part]
            if isinstance(value, dict) and got != value:
                assert got.keys() == value.keys(), (section, part)
                for key, one in value.items():
                    diff = _first_difference(got[key], one)
                    assert got[key] == one, (section, part, key, diff)
            assert got == value, (section, part)


def _first_difference(got: Any, expected: Any) -> Any:
    if isinstance(expected, dict):
        return {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    if isinstance(expected, list):
        for n, (a, b) in enumerate(zip(got, expected, strict=False)):
            if a != b:
                return (n, a, b)
        return (len(got), len(expected))
    return (got, expected)


posts = st.builds(
    Post,
    number=st.just(0),
    account=st.sampled_from([0, 0, 1, 2]),
    author=st.integers(0, 3),
    private=st.booleans(),
    mentions=st.sampled_from([True, True, False]),
    root=st.integers(0, 5),
    text=st.sampled_from(TEXTS),
    followers=st.sampled_from([10, 2_000, 20_000]),
    minute=st.integers(-20, 0),
    poison=st.sampled_from([False] * 12 + [True]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    drawn=st.lists(posts, min_size=1, max_size=10),
    data=st.data(),
    size=st.integers(1, 8),
    online=st.booleans(),
    away=st.booleans(),
)
def test_batches_leave_what_one_at_a_time_leaves(
    drawn: list[Post], data: st.DataObject, size: int, online: bool, away: bool
) -> None:
    table = [
        Post(**{**vars(post), "number": n, "root": min(post.root, n)})
        for n, post in enumerate(drawn)
    ]
    # Deliveries: every post at least once, in any order, some twice (replays),
    # and maybe a malformed body among them.
    order = data.draw(st.permutations(range(len(table))))
    repeats = data.draw(st.lists(st.integers(0, len(table) - 1), max_size=4))
    malformed_at = data.draw(st.none() | st.integers(0, len(order) + len(repeats)))
    note(f"posts {table}, size {size}, online {online}, away {away}")
    base = timezone.now().replace(microsecond=0)
    hours = RARE_HOURS if away else {}
    worlds = [make_world(hours=hours), make_world(hours=hours)]
    # In memory: the tests' Redis database is shared with other test processes.
    presence = MemoryPresence()
    for world in worlds:
        if online:
            presence.touch(world.tenants[0].pk, world.agent.pk)
    with (
        patch("helpdesk.services.assignment.presence_store", lambda: presence),
        patch("helpdesk.services.inbound_batch.presence_store", lambda: presence),
    ):
        ids = []
        for world in worlds:
            bodies = [body(world, table[n], base) for n in [*order, *repeats]]
            if malformed_at is not None:
                bodies.insert(malformed_at, MALFORMED)
            ids.append(store(world, bodies, base))
        one_at_a_time(ids[0])
        in_batches(ids[1], size)
        assert_same(snapshot(worlds[1]), snapshot(worlds[0]))


# --- Exact examples ----------------------------------------------------------


def post(
    world: World, number: int, *, at: datetime | None = None, **overrides: Any
) -> bytes:
    """A Sandbox delivery of post `number` (fields as `Post`'s, `overrides` win),
    made at `at` (now by default)."""
    fields: dict[str, Any] = {
        "number": number,
        "account": 0,
        "author": number % 3,
        "private": False,
        "mentions": True,
        "root": number,
        "text": TEXTS[0],
        "followers": 10,
        "minute": 0,
    }
    fields.update(overrides)
    return body(world, Post(**fields), at or timezone.now())


def assert_messages_and_gapless_events(*expected: tuple[Tenant, int]) -> None:
    """Each tenant holds `count` messages, each of which made two events: the
    tenant's sequences are 1..2 x count, without gaps."""
    for tenant, count in expected:
        with tenant_context(tenant):
            assert Message.objects.count() == count
            assert sorted(Event.objects.values_list("seq", flat=True)) == list(
                range(1, 2 * count + 1)
            )


@pytest.mark.django_db(transaction=True)
def test_one_task_records_its_batch_in_one_transaction_and_marks_every_event() -> None:
    world = make_world(hours={})
    ids = store(world, [post(world, n) for n in range(5)], timezone.now())

    with count_statements() as seen:
        assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert (
        list(WebhookEvent.objects.filter(pk__in=ids).values_list("status", "items"))
        == [("processed", 1)] * 5
    )
    assert [sql for sql in seen.sql if sql in ("BEGIN", "COMMIT")] == [
        "BEGIN",
        "COMMIT",
    ]
    with tenant_context(world.tenants[0]):
        assert Message.objects.count() == 5
        assert Event.objects.count() == 10
        assert sorted(Event.objects.values_list("seq", flat=True)) == list(range(1, 11))
    # The later tasks find their events processed and do nothing.
    with count_statements() as later:
        assert process_webhook_event(ids[3], batch_size=10) == "processed"
    assert len(later) == 3  # BEGIN, the claim, COMMIT


@pytest.mark.django_db(transaction=True)
def test_events_are_pushed_only_after_the_batch_commits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from helpdesk import events

    world = make_world(hours={})
    ids = store(world, [post(world, n) for n in range(3)], timezone.now())
    pushed: list[tuple[str, bool]] = []

    def send(group: str, payloads: list[dict[str, Any]]) -> None:
        from django.db import connection

        pushed.extend((p["type"], connection.in_atomic_block) for p in payloads)

    monkeypatch.setattr(events, "send_all_to_group", send)
    process_webhook_event(ids[0], batch_size=10)

    assert (
        pushed
        == [
            ("message.created", False),
            ("conversation.created", False),
        ]
        * 3
    )


@pytest.mark.django_db(transaction=True)
def test_a_failure_mid_batch_leaves_every_event_received_and_nothing_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from social import batch_ingest

    world = make_world(hours={})
    ids = store(world, [post(world, n) for n in range(4)], timezone.now())

    def crash(batch: list[Any]) -> None:
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(batch_ingest, "_mark", crash)
    with pytest.raises(batch_ingest.BatchFailed) as failed:
        batch_ingest.process_batch(ids[0], limit=10)

    assert failed.value.claimed == ids
    assert set(
        WebhookEvent.objects.filter(pk__in=ids).values_list("status", flat=True)
    ) == {"received"}
    with tenant_context(world.tenants[0]):
        assert (Message.objects.count(), Event.objects.count()) == (0, 0)
    monkeypatch.undo()
    assert process_webhook_event(ids[0], batch_size=10) == "processed"
    with tenant_context(world.tenants[0]):
        assert (Message.objects.count(), Event.objects.count()) == (4, 8)


@pytest.mark.django_db(transaction=True)
def test_a_poisoned_event_fails_alone_and_its_neighbours_are_recorded() -> None:
    world = make_world(hours={})
    bodies = [post(world, 0), post(world, 1, text=f"bad{POISON}byte"), post(world, 2)]
    ids = store(world, bodies, timezone.now())

    assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert list(
        WebhookEvent.objects.filter(pk__in=ids).order_by("pk").values_list("status")
    ) == [("processed",), ("received",), ("processed",)]
    with tenant_context(world.tenants[0]):
        assert list(
            Message.objects.order_by("external_id").values_list("external_id")
        ) == [("p0",), ("p2",)]
    with pytest.raises(DatabaseError):
        process_webhook_event(ids[1], batch_size=10)


@pytest.mark.django_db(transaction=True)
def test_a_malformed_delivery_is_kept_as_malformed_beside_recorded_neighbours() -> None:
    world = make_world(hours={})
    ids = store(world, [post(world, 0), MALFORMED, post(world, 1)], timezone.now())

    assert process_webhook_event(ids[0], batch_size=10) == "processed"

    rows = WebhookEvent.objects.filter(pk__in=ids).order_by("pk")
    assert [(r.status, r.items, r.error != "") for r in rows] == [
        ("processed", 1, False),
        ("malformed", 0, True),
        ("processed", 1, False),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_retried_event_is_not_claimed_by_other_batches() -> None:
    world = make_world(hours={})
    ids = store(world, [post(world, n) for n in range(3)], timezone.now())
    WebhookEvent.objects.filter(pk=ids[1]).update(attempts=2)

    assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert list(
        WebhookEvent.objects.filter(pk__in=ids).order_by("pk").values_list("status")
    ) == [("processed",), ("received",), ("processed",)]
    assert process_webhook_event(ids[1], batch_size=10) == "processed"


@pytest.mark.django_db(transaction=True)
def test_a_reply_before_its_thread_waits_and_joins_it_when_the_batch_opens_it() -> None:
    world = make_world(hours={})
    reply = post(world, 1, author=0, root=0, mentions=False, minute=1)
    root = post(world, 0, author=0)
    ids = store(world, [reply, root], timezone.now())

    process_one_webhook_event(ids[0])  # the reply comes first: it waits
    assert process_webhook_event(ids[1], batch_size=10) == "processed"

    with tenant_context(world.tenants[0]):
        conversation = Conversation.objects.get()
        assert list(conversation.messages.values_list("external_id", flat=True)) == [
            "p0",
            "p1",
        ]
        assert conversation.customer_message_count == 2


@pytest.mark.django_db(transaction=True)
def test_replies_waiting_on_several_threads_join_the_threads_the_batch_opens() -> None:
    world = make_world(hours={})
    waiting = [
        post(world, 10, author=0, root=0, mentions=False, minute=1),
        post(world, 11, author=1, root=1, mentions=False, minute=1),
        post(world, 12, author=2, root=2, account=1, mentions=False, minute=1),
        # Its thread (post 3) is not in the batch: it keeps waiting.
        post(world, 13, author=3, root=3, mentions=False, minute=1),
    ]
    roots = [
        post(world, 0, author=0),
        post(world, 1, author=1),
        post(world, 2, author=2, account=1),
    ]
    ids = store(world, [*waiting, *roots], timezone.now())
    for event_id in ids[:4]:
        process_one_webhook_event(event_id)
    with tenant_context(world.tenants[0]):
        assert WaitingItem.objects.count() == 4

    assert process_webhook_event(ids[4], batch_size=10) == "processed"

    with tenant_context(world.tenants[0]):
        threads = {
            conversation.public_thread_ref: list(
                conversation.messages.order_by("created_at").values_list(
                    "external_id", flat=True
                )
            )
            for conversation in Conversation.objects.all()
        }
        assert threads == {
            "p0": ["p0", "p10"],
            "p1": ["p1", "p11"],
            "p2": ["p2", "p12"],
        }
        assert list(WaitingItem.objects.values_list("external_id", flat=True)) == [
            "p13"
        ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("online", [False, True])
def test_the_batch_takes_the_counter_with_its_last_statement(online: bool) -> None:
    """The event sequences are allocated in the batch's one trailing statement,
    with the messages' `seq`, the Event rows and the webhook events' final
    status, and COMMIT goes with it: the tenant's counter row is not locked
    while the rest of the batch is written (with an agent online, routing
    writes first, then the same statement), nor after it."""
    world = make_world(hours={})
    ids = store(world, [post(world, n) for n in range(5)], timezone.now())
    presence = MemoryPresence()
    if online:
        presence.touch(world.tenants[0].pk, world.agent.pk)

    with (
        patch("helpdesk.services.assignment.presence_store", lambda: presence),
        patch("helpdesk.services.inbound_batch.presence_store", lambda: presence),
        count_statements() as seen,
    ):
        assert process_webhook_event(ids[0], batch_size=10) == "processed"

    taking = [n for n, sql in enumerate(seen.sql) if "helpdesk_eventcounter" in sql]
    assert len(taking) == 1, seen.listing()
    counter = seen.sql[taking[0]]
    assert counter.startswith("WITH s AS (INSERT INTO helpdesk_eventcounter")
    assert 'UPDATE "helpdesk_message" AS m SET "seq"' in counter
    assert 'INSERT INTO "helpdesk_event"' in counter
    assert 'UPDATE "social_webhookevent"' in counter
    # Before it: the threads it opens locked and their waiting followers looked
    # up (none). After it, COMMIT only (sent with it: tenants.last_write); no
    # savepoint anywhere, the tenant's setting applied once.
    assert seen.sql[taking[0] - 2].startswith("SELECT pg_advisory_xact_lock("), (
        seen.listing()
    )
    assert seen.sql[taking[0] - 1].startswith(
        'SELECT %s AS "a" FROM "social_waitingitem"'
    ), seen.listing()
    assert seen.sql[taking[0] + 1 :] == ["COMMIT"], seen.listing()
    assert not [sql for sql in seen.sql if "SAVEPOINT" in sql], seen.listing()
    assert len([sql for sql in seen.sql if "app.tenant_id" in sql]) == 1, seen.listing()
    with tenant_context(world.tenants[0]):
        assert set(
            WebhookEvent.objects.filter(pk__in=ids).values_list("status", "items")
        ) == {("processed", 1)}
    with tenant_context(world.tenants[0]):
        messages = list(Message.objects.order_by("id").values_list("id", "seq"))
        created = dict(
            Event.objects.filter(type="message.created").values_list(
                "seq", "payload__message_id"
            )
        )
        seqs = list(Event.objects.order_by("id").values_list("seq", flat=True))
    assert [seq for _id, seq in messages] == [1, 3, 5, 7, 9]
    assert created == {seq: pk for pk, seq in messages}
    assert seqs == list(range(1, 11))


@pytest.mark.django_db(transaction=True)
def test_the_batch_releases_the_counter_row_with_its_statement() -> None:
    """Once the batch's trailing statement has run, the tenant's counter row is
    free to another connection with its new value committed, before the batch's
    Python is done (here: while it asks whether incident rules are open)."""
    world = make_world(hours={})
    ids = store(world, [post(world, n) for n in range(5)], timezone.now())
    seen: list[tuple[str, int | None]] = []

    def probe(asked: int) -> bool:
        seen.append(counter_seen_elsewhere(asked))
        return False

    with patch("helpdesk.services.inbound_batch.incident_rules_open", probe):
        assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert seen == [("free", 10)]
    assert set(
        WebhookEvent.objects.filter(pk__in=ids).values_list("status", "items")
    ) == {("processed", 1)}


def claims_and_routings(seen: Any) -> tuple[int, int, int, int]:
    """(own-event claims, neighbour claims, claims again by id, routings) among
    the statements seen."""
    return (
        sum(sql == batch_ingest._OWN for sql in seen.sql),
        sum(sql == batch_ingest._NEIGHBOURS for sql in seen.sql),
        sum(sql == batch_ingest._AGAIN for sql in seen.sql),
        sum(sql == batch_ingest._ROUTES for sql in seen.sql),
    )


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_two_tenants_commits_each_tenant_with_its_counter() -> None:
    """Items of two tenants: claimed and routed once, the own event's tenant's
    group (here the second tenant's) in the first transaction, the other's in
    a transaction of its own; each tenant's counter row is released with its
    COMMIT, no savepoint, no rollback; both tenants' items recorded and every
    event processed."""
    world = make_world(hours={})
    probed: list[tuple[int, tuple[str, int | None]]] = []

    def probe(asked: int) -> bool:
        probed.append((asked, counter_seen_elsewhere(asked)))
        return False

    ids = store(
        world,
        [post(world, 0, account=2), post(world, 1), post(world, 2, account=2)],
        timezone.now(),
    )
    first, second = world.tenants
    with (
        patch("helpdesk.services.inbound_batch.incident_rules_open", probe),
        count_statements() as seen,
    ):
        assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert probed == [(second.pk, ("free", 4)), (first.pk, ("free", 2))]
    assert claims_and_routings(seen) == (1, 1, 1, 1), seen.listing()
    assert [sql for sql in seen.sql if sql in ("BEGIN", "COMMIT", "ROLLBACK")] == [
        "BEGIN",
        "COMMIT",
        "BEGIN",
        "COMMIT",
    ], seen.listing()
    assert not [sql for sql in seen.sql if "SAVEPOINT" in sql], seen.listing()
    settings = [sql for sql in seen.sql if "app.tenant_id" in sql]
    assert len(settings) == 2, seen.listing()
    counters = [n for n, sql in enumerate(seen.sql) if "helpdesk_eventcounter" in sql]
    assert [seen.sql[n + 1] for n in counters] == ["COMMIT", "COMMIT"]
    assert_messages_and_gapless_events((first, 1), (second, 2))
    assert list(
        WebhookEvent.objects.filter(pk__in=ids)
        .order_by("pk")
        .values_list("status", "items", "tenant_id")
    ) == [
        ("processed", 1, second.pk),
        ("processed", 1, first.pk),
        ("processed", 1, second.pk),
    ]


def mixed(world: World, base: datetime) -> list[bytes]:
    """Deliveries of both tenants in one batch: a malformed body, private
    messages, replies that wait for their thread (in each tenant), an author
    with items in two threads, a duplicate."""

    def at(number: int, **overrides: Any) -> bytes:
        return post(world, number, at=base, **overrides)

    return [
        at(0, account=2, author=0),
        at(2, author=1, root=1, mentions=False, minute=1),
        at(1, author=1),
        MALFORMED,
        at(3, account=1, private=True, author=2),
        at(5, account=2, author=0, root=4, mentions=False, minute=1),
        at(4, account=2, author=3),
        at(6, author=1, text=TEXTS[1]),
        at(1, author=1),
        at(7, account=2, private=True, author=0),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_mixed_batch_is_claimed_and_routed_once_and_matches_one_at_a_time() -> None:
    """One task takes a batch of both tenants' deliveries: one claim, one
    routing (no claim undone and taken again), each tenant's group in its own
    transaction, and the rows equal those of the same deliveries recorded one
    at a time."""
    worlds = [make_world(hours={}), make_world(hours={})]
    base = timezone.now()
    ids = [store(world, mixed(world, base), base) for world in worlds]
    one_at_a_time(ids[0])

    with count_statements() as seen:
        assert process_webhook_event(ids[1][0], batch_size=20) == "processed"

    assert claims_and_routings(seen) == (1, 1, 1, 1), seen.listing()
    # (The items that go alone use savepoints of their own, as one at a time.)
    assert [sql for sql in seen.sql if sql in ("BEGIN", "COMMIT", "ROLLBACK")] == [
        "BEGIN",
        "COMMIT",
    ] * 2, seen.listing()
    assert set(
        WebhookEvent.objects.filter(pk__in=ids[1]).values_list("status", flat=True)
    ) == {"processed", "malformed"}
    assert_same(snapshot(worlds[1]), snapshot(worlds[0]))


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_between_the_tenants_loses_and_doubles_nothing() -> None:
    """The first tenant's group commits; the worker dies (the database goes
    away) while recording the second: nothing of the second is written, its
    events stay `received` and free, and their own tasks record them once."""
    world = make_world(hours={})
    ids = store(
        world,
        [post(world, 0), post(world, 1, account=2), post(world, 2)],
        timezone.now(),
    )
    first, second = world.tenants
    original = batch_ingest.record_items

    def dying(entries: Any, **options: Any) -> Any:
        if entries and entries[0][0].tenant_id == second.pk:
            raise OperationalError("server closed the connection unexpectedly")
        return original(entries, **options)

    with (
        patch.object(batch_ingest, "record_items", dying),
        pytest.raises(OperationalError),
    ):
        process_webhook_event(ids[0], batch_size=10)

    assert list(
        WebhookEvent.objects.filter(pk__in=ids).order_by("pk").values_list("status")
    ) == [("processed",), ("received",), ("processed",)]
    with tenant_context(second):
        assert (Message.objects.count(), Event.objects.count()) == (0, 0)
        assert not EventCounter.objects.exists()
    # Its own task (the first's is done: it finds its event processed).
    assert process_webhook_event(ids[0], batch_size=10) == "processed"
    assert process_webhook_event(ids[1], batch_size=10) == "processed"
    assert_messages_and_gapless_events((first, 2), (second, 1))
    assert set(
        WebhookEvent.objects.filter(pk__in=ids).values_list("status", "items")
    ) == {("processed", 1)}


@pytest.mark.django_db(transaction=True)
def test_a_poisoned_event_of_the_later_tenant_fails_alone() -> None:
    """The later tenant's group fails on one event the database refuses: the
    first group stays committed, the later group's other events are recorded
    one by one, and the poisoned one is left `received` to its task."""
    world = make_world(hours={})
    bodies = [
        post(world, 0),
        post(world, 1, account=2),
        post(world, 2, account=2, text=f"bad{POISON}byte"),
        post(world, 3, account=2),
    ]
    ids = store(world, bodies, timezone.now())

    assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert list(
        WebhookEvent.objects.filter(pk__in=ids).order_by("pk").values_list("status")
    ) == [("processed",), ("processed",), ("received",), ("processed",)]
    with tenant_context(world.tenants[1]):
        assert list(
            Message.objects.order_by("external_id").values_list("external_id")
        ) == [("p1",), ("p3",)]
        assert sorted(Event.objects.values_list("seq", flat=True)) == [1, 2, 3, 4]
    with pytest.raises(DatabaseError):
        process_webhook_event(ids[2], batch_size=10)


@pytest.mark.django_db(transaction=True)
def test_a_later_tenant_raced_is_claimed_again_in_a_savepoint() -> None:
    """A unique key a concurrent worker wrote stops the later tenant's group:
    only its transaction rolls back, and its events are claimed again and
    recorded in a savepoint, every item once."""
    world = make_world(hours={})
    ids = store(
        world,
        [post(world, 0), post(world, 1, account=2), post(world, 2, account=2)],
        timezone.now(),
    )
    original = inbound_batch.record_inbound_batch
    calls: list[tuple[int, bool]] = []

    def racing(tenant: Tenant, entries: Any, **options: Any) -> Any:
        calls.append((tenant.pk, options.get("last") is not None))
        if len(calls) == 2:
            raise IntegrityError("a concurrent worker wrote one of the keys")
        return original(tenant, entries, **options)

    with patch.object(batch_ingest, "record_inbound_batch", racing):
        assert process_webhook_event(ids[0], batch_size=10) == "processed"

    first, second = world.tenants
    assert calls == [(first.pk, True), (second.pk, True), (second.pk, False)]
    assert_messages_and_gapless_events((first, 1), (second, 2))
    assert set(
        WebhookEvent.objects.filter(pk__in=ids).values_list("status", "items")
    ) == {("processed", 1)}


@pytest.mark.django_db(transaction=True)
def test_a_raced_one_tenant_batch_is_undone_and_claimed_again() -> None:
    """A unique key a concurrent worker wrote stops the one-tenant batch, which
    has no savepoint: its transaction rolls back whole (nothing recorded, no
    sequence taken, no event marked) and the batch is claimed again, each
    tenant's group in a savepoint, which records every item once."""
    world = make_world(hours={})
    ids = store(world, [post(world, n) for n in range(5)], timezone.now())
    original = inbound_batch.record_inbound_batch
    calls: list[bool] = []

    def racing(tenant: Tenant, entries: Any, **options: Any) -> Any:
        calls.append(options.get("last") is not None)
        if len(calls) == 1:
            with tenant_context(tenant):
                assert Message.objects.count() == 0
            raise IntegrityError("a concurrent worker wrote one of the keys")
        return original(tenant, entries, **options)

    with patch.object(batch_ingest, "record_inbound_batch", racing):
        assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert calls == [True, False]
    with tenant_context(world.tenants[0]):
        assert Message.objects.count() == 5
        assert sorted(Event.objects.values_list("seq", flat=True)) == list(range(1, 11))
    assert set(
        WebhookEvent.objects.filter(pk__in=ids).values_list("status", "items")
    ) == {("processed", 1)}
