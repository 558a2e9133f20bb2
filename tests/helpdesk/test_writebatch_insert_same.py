"""WriteBatch.insert reads a row's values from its `__dict__` through a per-model
plan (helpdesk.services.writebatch._Plan) instead of each field's `pre_save`:
the rendered statements (SQL text, parameters, their order) and the rows' own
side effects (auto_now stamps) are exactly those of the implementation it
replaced, kept here as `reference_insert`, on the real models (care facts,
conversations, messages, events, contacts) and a model with auto_now,
auto_now_add, defaults and JSON fields, on PostgreSQL and the SQLite demo's
vendor (rendered only: nothing is executed)."""

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock
from uuid import UUID

import pytest
from django.apps.registry import Apps
from django.db import connection, models
from django.db.utils import ConnectionHandler
from django.utils.translation import gettext_lazy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from helpdesk.models import CareFact, Contact, Conversation, Event, Message
from helpdesk.services import writebatch
from helpdesk.services.writebatch import Sql, WriteBatch

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)

_isolated = Apps()


class Stamped(models.Model):
    """auto_now, auto_now_add, defaults and JSON: no table, rendered only."""

    name = models.CharField(max_length=40, default="unnamed")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    day = models.DateField(auto_now_add=True)
    payload = models.JSONField(default=dict)
    count = models.IntegerField(default=0)
    ratio = models.FloatField(null=True)
    ref = models.UUIDField(null=True)
    flag = models.BooleanField(default=False)

    class Meta:
        apps = _isolated
        app_label = "h5_writebatch_same"
        db_table = "h5_writebatch_same_stamped"

    def __str__(self) -> str:
        return str(self.name)


def reference_insert(
    batch: WriteBatch,
    rows: Sequence[models.Model],
    *,
    sql: Sequence[dict[str, Sql]] = (),
) -> None:
    """WriteBatch.insert before the per-model plan (commit 8133f6d), as it was
    but for `_Merged`'s vendor argument."""
    if not rows:
        return
    conn = writebatch.connection  # type: ignore[attr-defined]  # (SQLite: patched)
    model = type(rows[0])
    fields, head = writebatch._shape(model, rows[0].pk is not None, conn.vendor)
    merged = batch._inserts.get(head)
    if merged is None:
        merged = batch._inserts[head] = writebatch._Merged(
            len(batch.statements), model, list(fields), head, conn.vendor
        )
        batch.statements.append(("", []))
    for n, row in enumerate(rows):
        exprs = sql[n] if n < len(sql) else None
        if exprs:
            merged.keep_values_list()
        checks = merged.checks
        values: list[Any] = []
        for i, f in enumerate(fields):
            expr = exprs.get(f.attname) if exprs else None
            if expr is not None:
                values.append(expr)
                continue
            value = f.pre_save(row, add=True)
            if checks is not None and (value is None or checks[i](value)):
                values.append(value)
                continue
            as_is = merged.as_is
            if checks is not None:
                merged.keep_values_list()
                checks = None
                values = [
                    writebatch._prepared(g, as_is[j], kept)
                    for j, (g, kept) in enumerate(zip(fields, values, strict=False))
                ]
            values.append(writebatch._prepared(f, as_is[i], value))
        merged.rows.append(values)


Call = tuple[Callable[[], list[models.Model]], list[dict[str, Sql]]]


def _rendered(batch: WriteBatch) -> list[tuple[str, list[Any]]]:
    """The batch's statements as flush would run them (not run)."""
    statements = list(batch.statements)
    for head, merged in batch._inserts.items():
        statements[merged.index] = merged.render(head)
    return statements


def _value(value: Any) -> Any:
    # NaN != NaN: its repr; a Jsonb (no __eq__): its object and dumper.
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Jsonb):
        return (value.obj, value.dumps)
    return value


def _comparable(statements: list[tuple[str, list[Any]]]) -> list[Any]:
    return [(sql, [(type(v), _value(v)) for v in params]) for sql, params in statements]


def _run(
    insert: Callable[..., None], calls: list[Call]
) -> tuple[list[Any], list[list[dict[str, Any]]], BaseException | None]:
    batch = WriteBatch()
    made: list[list[dict[str, Any]]] = []
    failed: BaseException | None = None
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        for make, exprs in calls:
            rows = make()
            try:
                insert(batch, rows, sql=exprs)
            except (AttributeError, TypeError, ValueError) as error:
                failed = error
                break
            finally:
                made.append(
                    [
                        {k: v for k, v in row.__dict__.items() if k != "_state"}
                        for row in rows
                    ]
                )
    rendered = [] if failed is not None else _comparable(_rendered(batch))
    return rendered, made, failed


def _new_insert(batch: WriteBatch, rows: Any, *, sql: Any) -> None:
    batch.insert(rows, sql=sql)


def assert_same(calls: list[Call]) -> list[Any]:
    old = _run(reference_insert, calls)
    new = _run(_new_insert, calls)
    assert new[0] == old[0]
    assert new[1] == old[1]
    assert type(new[2]) is type(old[2])
    assert str(new[2]) == str(old[2])
    return new[0]


@pytest.fixture(params=["postgresql", "sqlite"])
def vendor(request: pytest.FixtureRequest) -> Iterator[str]:
    """The module's connection: PostgreSQL's, or an SQLite one that is never
    opened (rendering needs its quoting and value preparation only)."""
    if request.param == "postgresql":
        assert connection.vendor == "postgresql"
        yield "postgresql"
        return
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )
    sqlite = handler["default"]
    with (
        mock.patch.object(writebatch, "connection", sqlite),
        mock.patch.object(writebatch, "connections", {"default": sqlite}),
    ):
        yield "sqlite"


def fact(n: int = 0, **changes: Any) -> CareFact:
    values: dict[str, Any] = {
        "tenant_id": 1,
        "conversation_id": 10 + n,
        "kind": "first_response",
        "brand_id": 3,
        "account_id": 4,
        "platform": "sandbox",
        "origin": Conversation.Origin.MENTION,
        "sentiment": "neutral",
        "follower_band": "small",
        "lane": "standard",
        "agent_id": None,
        "visibility": "public",
        "reason": "",
        "started_at": AT,
        "at": AT + timedelta(seconds=n),
        "raw_seconds": 10 + n,
        "business_seconds": 9,
        "target_seconds": 3600,
        "breached": False,
        "off_hours": n % 2 == 1,
    }
    return CareFact(**{**values, **changes})


def conversation(n: int = 0, **changes: Any) -> Conversation:
    values: dict[str, Any] = {
        "tenant_id": 1,
        "brand_id": 3,
        "social_account_id": 4,
        "contact_id": 6,
        "platform": "sandbox",
        "origin": Conversation.Origin.MENTION,
        "public_thread_ref": f"t-{n}",
        "preview": "it's \\ 'quoted' \"twice\" %s \u2013 ünïcode 🚀",
        "engagement_per_hour": 0.5 + n,
        "last_activity_at": AT + timedelta(microseconds=123456 + n),
        "created_at": AT,
    }
    return Conversation(**{**values, **changes})


def message(n: int = 0, **changes: Any) -> Message:
    values: dict[str, Any] = {
        "tenant_id": 1,
        "conversation_id": 2,
        "account_id": 4,
        "platform": "sandbox",
        "direction": "out",
        "visibility": "public",
        "text": f"reply {n}",
        "client_ref": UUID(int=n + 1),
        "created_at": AT,
    }
    return Message(**{**values, **changes})


def event(n: int = 0, **changes: Any) -> Event:
    values: dict[str, Any] = {
        "tenant_id": 1,
        "seq": 100 + n,
        "type": "conversation.created",
        "payload": {"id": n, "tags": ["a", None], "at": "2026-12-06"},
        "created_at": AT,
    }
    return Event(**{**values, **changes})


def stamped(n: int = 0, **changes: Any) -> Stamped:
    return Stamped(**{"name": f"s{n}", **changes})


def _without(row: models.Model, attname: str) -> models.Model:
    del row.__dict__[attname]
    return row


SEQ = Sql("(SELECT value - %s FROM s)", [0])

CASES: dict[str, list[Call]] = {
    "care facts, one per call": [(lambda: [fact(0)], []), (lambda: [fact(1)], [])],
    "care facts, several in a call": [(lambda: [fact(n) for n in range(3)], [])],
    "care fact with None, an agent and a str subclass": [
        (lambda: [fact(0, agent_id=7, reason=None, lane=None)], [])
    ],
    "care fact, a lazy string then plain ones": [
        (lambda: [fact(0)], []),
        (lambda: [fact(1, reason=gettext_lazy("late")), fact(2)], []),
    ],
    "care fact, an integer past 64 bits": [
        (lambda: [fact(0)], []),
        (lambda: [fact(1, raw_seconds=2**70)], []),
    ],
    "care fact, a Decimal and a float in integer fields": [
        (lambda: [fact(0, raw_seconds=Decimal(12), business_seconds=3.0)], [])
    ],
    "care fact with its pk": [(lambda: [fact(0, id=55)], [])],
    "conversations with defaults": [
        (lambda: [conversation(0)], []),
        (lambda: [conversation(1), conversation(2, engagement_per_hour=2)], []),
    ],
    "conversation, NaN mid-row in the second call": [
        (lambda: [conversation(0)], []),
        (lambda: [conversation(1, engagement_per_hour=math.nan)], []),
        (lambda: [conversation(2)], []),
    ],
    "conversation, a date and a naive-free string time": [
        (lambda: [conversation(0, snoozed_until=AT, preview=gettext_lazy("x"))], [])
    ],
    "messages with a sequence expression": [
        (lambda: [message(0)], [{"seq": SEQ}]),
        (lambda: [message(1)], [{"seq": SEQ, "text": None}]),  # type: ignore[dict-item]
        (lambda: [message(2)], []),
    ],
    "messages, plain then an expression": [
        (lambda: [message(0), message(1)], []),
        (lambda: [message(2), message(3)], [{}, {"seq": SEQ}]),
    ],
    "message with a string UUID and no client ref": [
        (lambda: [message(0, client_ref=str(UUID(int=9)))], []),
        (lambda: [message(1, client_ref=None)], []),
    ],
    "events (JSON payloads)": [
        (lambda: [event(0), event(1, payload=[1, 2.5, "x"])], []),
        (lambda: [event(2, payload=None)], [{"seq": SEQ}]),
    ],
    "contacts and care facts in one batch": [
        (lambda: [Contact(tenant_id=1, display_name="a", created_at=AT)], []),
        (lambda: [fact(0)], []),
        (lambda: [Contact(tenant_id=1, display_name="b", created_at=AT)], []),
    ],
    "auto_now, auto_now_add, defaults, JSON": [
        (lambda: [stamped(0), stamped(1, payload={"k": [1, None]})], []),
        (lambda: [stamped(2, created_at=AT, updated_at=AT, ratio=1.5)], []),
        (lambda: [stamped(3, ref=UUID(int=3))], [{"name": Sql("upper(%s)", ["x"])}]),
    ],
    "auto_now_add row with its pk": [(lambda: [stamped(0, id=4)], [])],
    "a field missing from an unsaved row": [
        (lambda: [fact(0)], []),
        (lambda: [_without(fact(1), "platform")], []),
    ],
    "a missing field written as SQL, a name that is no field": [
        (lambda: [_without(message(0), "seq")], [{"seq": SEQ, "nope": SEQ}]),
        (lambda: [_without(message(1), "seq"), message(2)], [{"seq": SEQ}]),
    ],
    "a foreign key missing from an unsaved row": [
        (lambda: [_without(message(0), "account_id")], []),
    ],
}


@pytest.mark.parametrize("case", list(CASES))
def test_insert_renders_what_the_reference_renders(vendor: str, case: str) -> None:
    rendered = assert_same(CASES[case])

    if case == "care facts, one per call":
        assert len(rendered) == 1
        sql, params = rendered[0]
        assert sql.startswith('INSERT INTO "helpdesk_carefact" ("tenant_id", ')
        if vendor == "postgresql":
            assert "json_populate_recordset" in sql
            assert len(params) == 1
        else:
            assert sql.count("%s") == len(params) == 40


def test_a_missing_field_fails_as_before() -> None:
    _rendered, _made, failed = _run(
        _new_insert, CASES["a field missing from an unsaved row"]
    )
    assert isinstance(failed, AttributeError)
    assert "Cannot retrieve deferred field 'platform'" in str(failed)


def test_auto_now_fields_are_stamped_on_the_row_as_before(vendor: str) -> None:
    # A DateField's auto_now_add stamps date.today(), not timezone.now().
    before = date.today()  # noqa: DTZ011 (what Django stamps)
    _rendered, made, failed = _run(_new_insert, CASES["auto_now_add row with its pk"])
    after = date.today()  # noqa: DTZ011
    assert failed is None
    (row,) = made[0]
    assert row["created_at"] == row["updated_at"] == NOW
    assert row["day"] in {before, after}


_texts = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.sampled_from([Conversation.Origin.MENTION, "sandbox"]),
)
_ints = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([True, 2.0, Decimal(3)]),
)
_moments = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis: naive bounds
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
)
_floats = st.one_of(st.none(), st.floats(), st.integers(-5, 5))


@st.composite
def _fact_rows(draw: st.DrawFn) -> CareFact:
    return fact(
        draw(st.integers(0, 5)),
        agent_id=draw(st.one_of(st.none(), st.integers(1, 9))),
        reason=draw(_texts),
        lane=draw(_texts),
        raw_seconds=draw(_ints),
        at=draw(_moments),
        breached=draw(st.sampled_from([False, True, None, 0])),
    )


@st.composite
def _conversation_rows(draw: st.DrawFn) -> Conversation:
    return conversation(
        draw(st.integers(0, 5)),
        engagement_per_hour=draw(_floats),
        preview=draw(_texts),
        snoozed_until=draw(_moments),
        priority=draw(_ints),
    )


@st.composite
def _message_rows(draw: st.DrawFn) -> Message:
    return message(
        draw(st.integers(0, 5)),
        client_ref=draw(st.one_of(st.none(), st.uuids(), st.uuids().map(str))),
        sentiment_score=draw(_floats),
        text=draw(_texts),
        seq=draw(_ints),
    )


@st.composite
def _stamped_rows(draw: st.DrawFn) -> Stamped:
    row = stamped(
        draw(st.integers(0, 5)),
        ratio=draw(_floats),
        payload=draw(st.one_of(st.none(), st.dictionaries(st.text(), st.integers()))),
        count=draw(st.integers(-9, 9)),
    )
    if draw(st.booleans()):
        row.__dict__["created_at"] = draw(_moments)
    return row


_rows = {
    "facts": _fact_rows(),
    "conversations": _conversation_rows(),
    "messages": _message_rows(),
    "stamped": _stamped_rows(),
}


@st.composite
def _calls(draw: st.DrawFn) -> list[Call]:
    calls: list[Call] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(sorted(_rows)))
        rows = draw(st.lists(_rows[kind], min_size=1, max_size=3))
        exprs: list[dict[str, Sql]] = []
        if kind == "messages" and draw(st.booleans()):
            exprs = [draw(st.sampled_from([{}, {"seq": SEQ}])) for _ in rows]
        # Fresh copies for each implementation (pre_save stamps the rows).
        calls.append((_copies(rows), exprs))
    return calls


def _copies(rows: list[models.Model]) -> Callable[[], list[models.Model]]:
    snapshots = [(type(row), dict(row.__dict__)) for row in rows]

    def make() -> list[models.Model]:
        made = []
        for model, values in snapshots:
            row = model.__new__(model)
            row.__dict__.update(values)
            row._state = type(values["_state"])()
            made.append(row)
        return made

    return make


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(calls=_calls())
def test_insert_renders_what_the_reference_renders_on_drawn_rows(
    vendor: str, calls: list[Call]
) -> None:
    assert_same(calls)
