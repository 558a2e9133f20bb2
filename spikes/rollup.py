"""Counting inbound per brand and five minutes (R13), by a periodic query, exactly.

Ingest is untouched (its budget and statement counts stay as they are): every
five minutes `count_inbound` reads the tenant's inbound messages written since
its cursor, through the `(tenant_id, id)` unique index every tenant table has,
and adds them to `SpikeCount` cells (brand, five-minute UTC bucket of the
message's time, the conversation's sentiment, the listening rule) with one
`INSERT ... ON CONFLICT DO UPDATE SET count = count + excluded.count` per chunk.
The cursor row is locked for the run, so two runs of a tenant take turns and
count nothing twice.

Exact, even when a message commits late. Ids are handed out when a row is
inserted, not when its transaction commits, so a run may see id 12 while id 11 is
still uncommitted; a cursor moved to 12 would never count 11. So the cursor is a
*settled* mark: every message at or below it is final and counted, and a run
moves it only to an id below which nothing can still appear (`settled_ceiling`):
the highest id it can see, once every transaction that was writing messages when
it looked has ended (an uncommitted id below a visible one belongs to a
transaction that began before that id was taken, so it was among them). On
PostgreSQL the run reads those writers from `pg_locks` (ROW EXCLUSIVE on the
message table, held to the end of each transaction) and waits for them, up to
SETTLE_WAIT; a writer still running then (a long transaction) leaves the mark
where it was until the next run. SQLite runs one writer at a time and commits ids
in order, so what is visible is final there.

What the mark has not reached yet, `unsettled_cells` counts live, read from the
messages above the mark: `spikes.services.read_brand` adds it to the cells, so a
bucket's count is every committed inbound message of it, once.

The listening rule is not stored with a message; a message of a `listening`
conversation is matched again with the tenant's compiled rules (microseconds per
post) and counted under the lowest matching rule id of its brand, or 0.

The first run of a tenant counts back to BACKFILL (four weeks and a day), so a
workspace with history has its baseline at once.
"""

# ruff: noqa: S608 - the SQL is built from module constants; values are parameters.

import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Max

from helpdesk.models import Message
from social.listening import Post
from social.listening_rules import tenant_matcher
from spikes.detector import floor_bucket
from spikes.models import SpikeCount, SpikeCursor
from tenants.models import Tenant

BACKFILL = timedelta(weeks=4, days=1)
SETTLE_WAIT = 2.0  # seconds a run waits for the message writers in flight to end
SETTLE_POLL = 0.02
CHUNK = 5000
UPSERT_ROWS = 1000  # cells per statement (SQLite's bound-parameter limit)
Cell = tuple[int, datetime, str, int]  # brand, bucket, sentiment, rule id
Row = tuple[int, datetime, int, str, str]  # id, time, brand, sentiment, origin
_ROW_FIELDS = (
    "pk",
    "created_at",
    "conversation__brand_id",
    "conversation__sentiment",
    "conversation__origin",
)
_TABLE = SpikeCount._meta.db_table
_MESSAGES = Message._meta.db_table
_CURSORS = SpikeCursor._meta.db_table
_MARK = (
    f'SELECT "{_CURSORS}"."last_message_id" FROM "{_CURSORS}"'
    f' WHERE "{_CURSORS}"."tenant_id" = %s'
)
# Transactions of other sessions that hold the message table's ROW EXCLUSIVE lock
# (they inserted, updated or deleted messages and have not ended).
_WRITERS = (
    "SELECT DISTINCT virtualtransaction FROM pg_locks"
    " WHERE locktype = 'relation' AND relation = %s::regclass"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()"
)
_UPSERT = (
    f"INSERT INTO {_TABLE} (tenant_id, brand_id, bucket, sentiment, rule_id, count)"
    " VALUES {rows} ON CONFLICT (tenant_id, brand_id, bucket, sentiment, rule_id)"
    f" DO UPDATE SET count = {_TABLE}.count + excluded.count"
)


def count_inbound(tenant: Tenant, *, now: datetime) -> int:
    """Add the tenant's inbound messages up to the settled mark to the
    five-minute counts; returns how many were counted.

    Call inside the tenant's context (transaction): the cursor row stays locked
    until it commits. Idempotent: a message is counted once, and only once it is
    final (see the module's docstring).
    """
    SpikeCursor.objects.bulk_create([SpikeCursor(tenant=tenant)], ignore_conflicts=True)
    cursor = SpikeCursor.objects.select_for_update().get(tenant=tenant)
    ceiling = settled_ceiling(tenant)
    counted = 0
    if ceiling is not None and ceiling > cursor.last_message_id:
        after = cursor.last_message_id
        while True:
            rows = Message.objects.filter(
                tenant=tenant,
                pk__gt=after,
                pk__lte=ceiling,
                direction=Message.Direction.IN,
            )
            if cursor.last_message_id == 0:
                rows = rows.filter(created_at__gte=now - BACKFILL)
            chunk: list[Row] = list(
                rows.order_by("pk").values_list(*_ROW_FIELDS)[:CHUNK]
            )
            if not chunk:
                break
            _add_counts(tenant, _cells(tenant.pk, chunk))
            counted += len(chunk)
            after = chunk[-1][0]
            if len(chunk) < CHUNK:
                break
        cursor.last_message_id = ceiling
    cursor.updated_at = now
    cursor.save(update_fields=["last_message_id", "updated_at"])
    return counted


def settled_ceiling(tenant: Tenant) -> int | None:
    """The highest message id below which no message can still appear: the
    highest the tenant has, once the writers in flight when it was read have
    ended; None when one of them is still running after SETTLE_WAIT."""
    top = Message.objects.filter(tenant=tenant).aggregate(top=Max("pk"))["top"] or 0
    if connection.vendor != "postgresql":
        return top
    deadline = time.monotonic() + SETTLE_WAIT
    with connection.cursor() as db:
        db.execute(_WRITERS, [_MESSAGES])
        writers = [row[0] for row in db.fetchall()]
        while writers:
            if time.monotonic() >= deadline:
                return None
            time.sleep(SETTLE_POLL)
            db.execute(
                _WRITERS + " AND virtualtransaction = ANY(%s)", [_MESSAGES, writers]
            )
            writers = [row[0] for row in db.fetchall()]
    return top


def settled_mark(tenant_id: int) -> int | None:
    """The tenant's settled mark, held (FOR SHARE on PostgreSQL) until the
    transaction ends, so that no run moves it while the caller reads the cells and
    what lies above it; None before the first run (nothing counted yet)."""
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as db:
        db.execute(_MARK + lock, [tenant_id])
        row = db.fetchone()
    return None if row is None else int(row[0])


def unsettled_cells(
    tenant_id: int,
    brand_id: int,
    *,
    above: int,
    since: datetime,
    rules: bool = True,
) -> "Counter[Cell]":
    """The brand's inbound messages above the settled mark `above`, from `since`,
    as cells (the listening rule only when `rules`; 0 otherwise). Call in the
    tenant's context."""
    rows: list[Row] = list(
        Message.objects.filter(
            tenant_id=tenant_id,
            pk__gt=above,
            direction=Message.Direction.IN,
            conversation__brand_id=brand_id,
            created_at__gte=since,
        ).values_list(*_ROW_FIELDS)
    )
    if not rules:
        return Counter(
            (brand, floor_bucket(at), sentiment, 0)
            for _, at, brand, sentiment, _ in rows
        )
    return _cells(tenant_id, rows)


def _cells(tenant_id: int, rows: Sequence[Row]) -> "Counter[Cell]":
    rules = _listening_rules(
        tenant_id, [row[0] for row in rows if row[4] == "listening"]
    )
    return Counter(
        (brand_id, floor_bucket(at), sentiment, rules.get(pk, 0))
        for pk, at, brand_id, sentiment, _ in rows
    )


def _listening_rules(tenant_id: int, message_ids: list[int]) -> dict[int, int]:
    """The lowest matching rule id of each listening message's brand."""
    if not message_ids:
        return {}
    matcher = tenant_matcher(tenant_id)
    found: dict[int, int] = {}
    for pk, text, handle, platform, brand_id in Message.objects.filter(
        tenant_id=tenant_id, pk__in=message_ids
    ).values_list(
        "pk", "text", "author_identity__handle", "platform", "conversation__brand_id"
    ):
        post = Post(text=text, author_handle=handle or "", platform=platform)
        ids = [m.rule_id for m in matcher.match(post) if m.brand_id == brand_id]
        if ids:
            found[pk] = min(ids)
    return found


def _add_counts(tenant: Tenant, cells: Counter[Cell]) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    items = list(cells.items())
    for start in range(0, len(items), UPSERT_ROWS):
        batch = items[start : start + UPSERT_ROWS]
        params: list[Any] = []
        for (brand_id, bucket, sentiment, rule_id), n in batch:
            params += [tenant.pk, brand_id, adapt(bucket), sentiment, rule_id, n]
        rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(batch))
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT.format(rows=rows), params)
