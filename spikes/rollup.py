"""Counting inbound per brand and five minutes (R13), by a periodic query.

Ingest is untouched (its budget and statement counts stay as they are): every
five minutes `count_inbound` reads the tenant's inbound messages written since
its cursor, the highest message id it counted, through the `(tenant_id, id)`
unique index every tenant table has, and adds them to `SpikeCount` cells (brand,
five-minute UTC bucket of the message's time, the conversation's sentiment, the
listening rule) with one `INSERT ... ON CONFLICT DO UPDATE SET count = count +
excluded.count` per chunk. The cursor row is locked for the run, so two runs of a
tenant take turns and count nothing twice.

The listening rule is not stored with a message; a message of a `listening`
conversation is matched again with the tenant's compiled rules (microseconds per
post) and counted under the lowest matching rule id of its brand, or 0.

The first run of a tenant counts back to BACKFILL (four weeks and a day), so a
workspace with history has its baseline at once. A message whose transaction
commits after a later id was counted is missed (a count short by one at most per
concurrent transaction at the moment of the run); the detector is statistical
and tolerates that.
"""

# ruff: noqa: S608 - the SQL is built from module constants; values are parameters.

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from helpdesk.models import Message
from social.listening import Post
from social.listening_rules import tenant_matcher
from spikes.detector import floor_bucket
from spikes.models import SpikeCount, SpikeCursor
from tenants.models import Tenant

BACKFILL = timedelta(weeks=4, days=1)
CHUNK = 5000
UPSERT_ROWS = 1000  # cells per statement (SQLite's bound-parameter limit)
Cell = tuple[int, datetime, str, int]  # brand, bucket, sentiment, rule id
_TABLE = SpikeCount._meta.db_table
_UPSERT = (
    f"INSERT INTO {_TABLE} (tenant_id, brand_id, bucket, sentiment, rule_id, count)"
    " VALUES {rows} ON CONFLICT (tenant_id, brand_id, bucket, sentiment, rule_id)"
    f" DO UPDATE SET count = {_TABLE}.count + excluded.count"
)


def count_inbound(tenant: Tenant, *, now: datetime) -> int:
    """Add the tenant's inbound messages written since the last run to the
    five-minute counts; returns how many were counted.

    Call inside the tenant's context (transaction): the cursor row stays locked
    until it commits. Idempotent: a message is counted once.
    """
    SpikeCursor.objects.bulk_create([SpikeCursor(tenant=tenant)], ignore_conflicts=True)
    cursor = SpikeCursor.objects.select_for_update().get(tenant=tenant)
    counted = 0
    while True:
        rows = Message.objects.filter(
            tenant=tenant,
            pk__gt=cursor.last_message_id,
            direction=Message.Direction.IN,
        )
        if cursor.last_message_id == 0:
            rows = rows.filter(created_at__gte=now - BACKFILL)
        chunk = list(
            rows.order_by("pk").values_list(
                "pk",
                "created_at",
                "conversation__brand_id",
                "conversation__sentiment",
                "conversation__origin",
            )[:CHUNK]
        )
        if not chunk:
            break
        rules = _listening_rules(
            tenant, [row[0] for row in chunk if row[4] == "listening"]
        )
        cells: Counter[Cell] = Counter(
            (brand_id, floor_bucket(at), sentiment, rules.get(pk, 0))
            for pk, at, brand_id, sentiment, _ in chunk
        )
        _add_counts(tenant, cells)
        counted += len(chunk)
        cursor.last_message_id = chunk[-1][0]
        if len(chunk) < CHUNK:
            break
    cursor.updated_at = now
    cursor.save(update_fields=["last_message_id", "updated_at"])
    return counted


def _listening_rules(tenant: Tenant, message_ids: list[int]) -> dict[int, int]:
    """The lowest matching rule id of each listening message's brand."""
    if not message_ids:
        return {}
    matcher = tenant_matcher(tenant.pk)
    found: dict[int, int] = {}
    for pk, text, handle, platform, brand_id in Message.objects.filter(
        tenant=tenant, pk__in=message_ids
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
