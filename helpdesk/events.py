"""Live events: group names, typed payloads, and sending after commit.

Durable events (conversation.*, message.*) get the tenant's next sequence number,
are stored as `Event` rows for catch-up, and are sent on commit. The row lock on the
tenant's `EventCounter` makes the sequence follow commit order, so a client that
resumes "after N" misses nothing. Ephemeral events (presence, viewing, typing) are
sent at once, carry no sequence and are not stored.

Payloads carry ids plus the changed fields; browsers re-fetch what they display.
`emit_many` stores a batch with one statement on PostgreSQL: the sequence
allocation and the INSERT of the Event rows together, after the batch's other
work (its webhook deliveries), so the counter row is locked from that statement
to COMMIT and no longer. With `last=True` the statement is the transaction's
last and, inside `tenants.last_write.commit_with_last_write()`, goes with COMMIT.
`Pending` collects a transaction's events for one such statement at its end.
Sending (channel layer, Celery) is helpdesk.publish's, which imports no service.
"""

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NotRequired, TypedDict

from django.db import connection
from django.utils import timezone

from helpdesk.models import Event
from helpdesk.publish import group_send as _group_send
from helpdesk.publish import group_send_many as _group_send_many
from helpdesk.publish import on_commit, send_control
from helpdesk.services import writebatch
from helpdesk.services.webhook_outbox import queue_webhook_deliveries_many
from tenants.last_write import execute_last
from tenants.outages import outage_service

logger = logging.getLogger(__name__)

DurableType = Literal[
    "conversation.created",
    "conversation.updated",
    "message.created",
    "message.updated",
    "alert.spike",
]
EphemeralType = Literal["presence", "viewing", "typing"]
__all__ = [
    "Pending",
    "emit",
    "emit_many",
    "next_seq",
    "send_all_to_group",
    "send_control",
    "send_to_group",
]


class ConversationEvent(TypedDict):
    type: DurableType
    seq: int
    conversation_id: int
    brand_id: int
    changed: dict[str, Any]


class MessageEvent(TypedDict):
    type: DurableType
    seq: int
    conversation_id: int
    brand_id: int
    message_id: int
    changed: dict[str, Any]


class EphemeralEvent(TypedDict):
    type: EphemeralType
    user_id: int
    conversation_id: NotRequired[int]
    state: str


class IncidentProgress(TypedDict):
    """An incident update's progress (R13; incidents.updates). Ephemeral: the
    incident page re-reads its progress panel on each one and after reconnecting."""

    type: Literal["incident.progress"]
    incident_id: int
    update_id: int
    status: str
    counts: dict[str, int]
    recipient_id: NotRequired[int]
    conversation_id: NotRequired[int]
    recipient_status: NotRequired[str]


def inbox_group(tenant_id: int) -> str:
    return f"t{tenant_id}"


def brand_group(tenant_id: int, brand_id: int) -> str:
    return f"t{tenant_id}.b{brand_id}"


def conversation_group(tenant_id: int, conversation_id: int) -> str:
    return f"t{tenant_id}.c{conversation_id}"


def user_group(tenant_id: int, user_id: int) -> str:
    return f"t{tenant_id}.u{user_id}"


_NEXT_SEQ = {
    "postgresql": (
        "INSERT INTO helpdesk_eventcounter (tenant_id, value) VALUES (%s, %s) "
        "ON CONFLICT (tenant_id) DO UPDATE SET value = helpdesk_eventcounter.value "
        "+ EXCLUDED.value RETURNING value"
    ),
}
_NEXT_SEQ["sqlite"] = _NEXT_SEQ["postgresql"]


def next_seq(tenant_id: int, *, count: int = 1) -> int:
    """Allocate the tenant's next `count` event sequences; returns the last one.

    The numbers `last - count + 1 .. last` are the caller's. Call inside the
    tenant's transaction (the counter row stays locked until it commits).
    """
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SEQ[connection.vendor], [tenant_id, count])
        row = cursor.fetchone()
    assert row is not None  # noqa: S101 - RETURNING always yields the row
    return int(row[0])


def emit(
    tenant_id: int, type: DurableType, *, seq: int | None = None, **fields: Any
) -> int:
    """Store a durable event with the next sequence and send it to the tenant on commit.

    Call inside the tenant's transaction (services do); returns the sequence. Pass
    `seq` when the caller allocated it already (to stamp it on a row first). The
    same transaction queues the event's outbound webhook deliveries (`fields` is
    their `data`), which costs one cache read when the tenant has no endpoints.
    """
    return emit_many(tenant_id, [(type, fields)], first_seq=seq)[0]


EventSpec = tuple[DurableType, dict[str, Any]]


def emit_many(
    tenant_id: int,
    items: Sequence[EventSpec],
    *,
    first_seq: "int | writebatch.Sequences | None" = None,
    known: Iterable[Any] = (),
    store: Callable[[list[Event]], None] | None = None,
    webhooks: bool = True,
    last: bool = False,
) -> list[int]:
    """Store several durable events of one tenant at once; send them on commit.

    `items` are `(type, fields)` pairs in order; `fields` are what `emit` takes
    (conversation_id, brand_id, message_id, changed, ...). Call inside the
    tenant's transaction. Returns the sequences, consecutive and in item order.

    Costs, whatever the number of items:
    - outbound webhooks first: one cached check; with active endpoints one
      endpoint query for the whole batch, the messages and conversations the
      events name read at most once each (none for those passed in `known`,
      loaded instances as they are now in this transaction), and one INSERT of
      all deliveries, enqueued after commit;
    - then, on PostgreSQL, one statement that allocates the sequences and
      inserts all the Event rows (the counter row is locked from there to
      COMMIT); elsewhere, or with `first_seq` or `store`, the allocation
      (`next_seq(count=len(items))`, none when the caller passes `first_seq`:
      it allocated `first_seq .. first_seq + n - 1`) and one INSERT, or none
      when `store` is given: it gets the unsaved rows to write with its own
      statement (same transaction);
    - one on-commit callback that pushes the payloads to the tenant's group in
      order (nothing is published before the commit).

    `webhooks=False`: the caller read in this transaction that the tenant has
    no active outbound endpoint (reply_lock's `has_webhook_endpoints`), so
    there is nothing to queue and the cached check is skipped.

    `last=True`: the caller sends nothing more in this transaction. Inside
    `tenants.last_write.commit_with_last_write()`, where it may, the statement
    of the previous point then goes with COMMIT in one pipeline (PostgreSQL,
    without `first_seq` or `store`), and the counter row is released as COMMIT
    completes; the payloads are still published on commit, after it.

    `first_seq` may be a write batch's `Sequences` (allocated by the batch's
    own statement, PostgreSQL): the Event rows go into that batch with their
    `seq` (and the payload's) taken there; the payloads get theirs when the
    batch has run, before the commit that publishes them. Returns [] then.
    """
    if not items:
        return []
    if isinstance(first_seq, writebatch.Sequences):
        _store_sequenced(tenant_id, items, first_seq)
        if webhooks:
            queue_webhook_deliveries_many(tenant_id, items, known=known)
        return []
    # Before the Event rows: the statement that takes the counter comes last.
    if webhooks:
        queue_webhook_deliveries_many(tenant_id, items, known=known)
    # "seq" second, as clients have always seen it; numbered below.
    payloads: list[dict[str, Any]] = [
        {"type": type, "seq": 0, **fields} for type, fields in items
    ]
    if first_seq is None and store is None and connection.vendor == "postgresql":
        first_seq = _insert_numbered(tenant_id, payloads, last=last)
        for n, payload in enumerate(payloads):
            payload["seq"] = first_seq + n
    else:
        if first_seq is None:
            first_seq = next_seq(tenant_id, count=len(items)) - len(items) + 1
        for n, payload in enumerate(payloads):
            payload["seq"] = first_seq + n
        if store is None and connection.vendor == "postgresql":
            _insert_events(tenant_id, payloads)
        else:
            rows = [
                Event(tenant_id=tenant_id, seq=p["seq"], type=p["type"], payload=p)
                for p in payloads
            ]
            if store is None:
                Event.objects.bulk_create(rows)
            else:
                store(rows)
    group = inbox_group(tenant_id)

    on_commit(lambda: send_all_to_group(group, payloads))
    return [p["seq"] for p in payloads]


class Pending:
    """A transaction's durable events, stored together at its end.

    A service that would emit events on its way (delivery's claims, its
    outcomes and failures) adds them here; its caller stores them all with
    `emit(last=True)` once nothing else is left to write, so the counter row
    is taken by the transaction's last statement, held until COMMIT only (sent
    with it inside `commit_with_last_write()`). The sequences follow the order
    the events were added in.
    """

    __slots__ = ("items", "tenant_id")

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self.items: list[EventSpec] = []

    def add(self, type: DurableType, **fields: Any) -> None:
        self.items.append((type, fields))

    def extend(self, items: Iterable[EventSpec]) -> None:
        self.items.extend(items)

    def emit(self, *, last: bool = False) -> list[int]:
        """emit_many of the events added so far (none: no statement)."""
        items, self.items = self.items, []
        return emit_many(self.tenant_id, items, last=last)


# One statement: the tenant's counter takes the batch's numbers, and the Event
# rows (from one JSON array, in its order) get them by position; it answers
# the last number. A data-modifying WITH always runs to completion.
_NUMBERED_INSERT = (
    f"WITH s AS ({_NEXT_SEQ['postgresql']}), w AS ("  # noqa: S608 - constant
    'INSERT INTO "helpdesk_event" ("tenant_id", "seq", "type", "payload",'
    " \"created_at\") SELECT %s, (SELECT value FROM s) - %s + e.n, e.v ->> 'type',"
    " e.v || jsonb_build_object('seq', (SELECT value FROM s) - %s + e.n), %s"
    " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(v, n)"
    " ORDER BY e.n) SELECT value FROM s"
)


def _insert_numbered(
    tenant_id: int, payloads: list[dict[str, Any]], *, last: bool
) -> int:
    """Allocate the sequences of `payloads` and insert their Event rows in one
    statement (PostgreSQL; each payload's "seq" is replaced by its number, in
    the row and its payload). Returns the first number. `last`: through
    tenants.last_write.execute_last (with COMMIT, where it may)."""
    count = len(payloads)
    params: list[Any] = [tenant_id, count, tenant_id, count, count, timezone.now()]
    params.append(json.dumps(payloads))
    row = execute_last(_NUMBERED_INSERT, params, commit=last)
    assert row is not None  # noqa: S101 - SELECT value FROM s: one row
    return int(row[0]) - count + 1


def _store_sequenced(
    tenant_id: int, items: Sequence[EventSpec], sequences: "writebatch.Sequences"
) -> None:
    """emit_many's Event rows with sequences the batch's statement allocates.

    One INSERT in the batch reads the payloads from one JSON array and numbers
    them by their position, as `_insert_events` does with known numbers: no
    Event instance and no jsonb value per row (about 60 us of a create's CPU).
    """
    payloads: list[dict[str, Any]] = [
        {"type": type, **fields} for type, fields in items
    ]
    seq = sequences.at_ordinal("e.n")
    # The numbering's SQL is writebatch's; the values are parameters.
    sql = (
        'INSERT INTO "helpdesk_event" ("tenant_id", "seq", "type",'  # noqa: S608
        f' "payload", "created_at") SELECT %s, {seq.sql}, e.v ->> \'type\','
        f" e.v || jsonb_build_object('seq', {seq.sql}), %s"
        " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(v, n)"
        " ORDER BY e.n"
    )
    params = [tenant_id, *seq.params, *seq.params, timezone.now()]
    sequences.batch.add(sql, [*params, json.dumps(payloads)])

    def numbered(first: int) -> None:
        for n, payload in enumerate(payloads):
            payload["seq"] = first + n

    sequences.then(numbered)
    group = inbox_group(tenant_id)
    on_commit(lambda: send_all_to_group(group, payloads))


def _insert_events(tenant_id: int, payloads: list[dict[str, Any]]) -> None:
    """The Event rows of `payloads` with one INSERT (PostgreSQL), no model
    instance built: bulk_create's per-row work was most of a 200-event batch's
    cost here. The payloads go as one JSON array, written by one json.dumps call
    (each element the text the payload field would write) instead of one jsonb
    value per row that psycopg then quotes again inside an array literal; each
    row's seq and type are its payload's."""
    writebatch.execute(
        [
            (
                'INSERT INTO "helpdesk_event" ("tenant_id", "seq", "type", "payload",'
                " \"created_at\") SELECT %s, (e ->> 'seq')::bigint, e ->> 'type', e, %s"
                " FROM jsonb_array_elements(%s::jsonb) AS e",
                [tenant_id, timezone.now(), json.dumps(payloads)],
            )
        ]
    )


def send_to_group(group: str, payload: dict[str, Any]) -> None:
    """Push one payload to a channel-layer group now (sync callers)."""
    try:
        _group_send(group, {"type": "event.message", "event": payload})
    except Exception as error:
        _push_failed(group, payload, error)


PUSH_BATCH = 100  # events per channel-layer message of a batch


def send_all_to_group(group: str, payloads: Sequence[dict[str, Any]]) -> None:
    """Push payloads to a channel-layer group now, in order, in one hand-over to
    the layer (emit_many's on-commit callback). Several go as `event.batch`
    messages of up to PUSH_BATCH events (one publish each, not one per event; the
    consumer sends each event as its own frame). Never raises."""
    chunks = [payloads[n : n + PUSH_BATCH] for n in range(0, len(payloads), PUSH_BATCH)]
    messages = [
        {"type": "event.message", "event": chunk[0]}
        if len(chunk) == 1
        else {"type": "event.batch", "events": list(chunk)}
        for chunk in chunks
    ]
    sent: list[int] = []
    try:
        _group_send_many(group, messages, sent=sent)
    except Exception as error:
        # The layer just failed: the later payloads are not tried (each would wait
        # for it too); each is logged as send_to_group would have.
        for chunk in chunks[len(sent) :]:
            for payload in chunk:
                _push_failed(group, payload, error)


def _push_failed(group: str, payload: dict[str, Any], error: Exception) -> None:
    # The row is committed; a client that missed the push catches up by sequence,
    # so this runs on commit without ever failing the request that wrote it.
    if outage_service(error) is None and not isinstance(error, TimeoutError):
        logger.error(
            "could not push event %s to %s",
            payload.get("type"),
            group,
            exc_info=error,
        )
    else:
        logger.warning(
            "could not push event %s to %s, channel layer unavailable: %r",
            payload.get("type"),
            group,
            error,
        )


def events_after(
    tenant_id: int, after: int, *, limit: int = 500
) -> list[dict[str, Any]]:
    """Durable events with a sequence above `after`, oldest first (catch-up)."""
    rows = Event.objects.filter(seq__gt=after).order_by("seq")[:limit]
    return [row.payload for row in rows]
