"""The conversation row a reply locks, in one compiled shape (helpdesk.compiled).

`post_reply` locks the conversation (FOR UPDATE OF the conversation only) with
its brand and the brand's holidays; building and compiling that
queryset cost about as much CPU as the rest of the reply's reads together. The
same statement says whether the workspace has an active outbound webhook
endpoint (`has_webhook_endpoints`), so a reply in a workspace without one skips
the endpoint cache's read (a Redis round trip, about 0.3 ms of CPU).

On PostgreSQL it also takes the id of the reply's message from its sequence
(`new_message_id`), so the reply can name the message in its events and insert
it, with the tenant's event sequences, in its last statement (replies._queue):
the counter row every write of the tenant waits for is then held for that one
statement and COMMIT. A refused reply leaves a gap in the ids, as a rolled-back
insert does. An id taken here is written a few milliseconds later by a
transaction that holds no lock on the message table yet; the spike counts'
settled mark (spikes.rollup), which relies on message writers holding that
lock from the moment an id is theirs, counts inbound messages only, so an
agent's reply taken this way is never among what it waits for.

A token reply on PostgreSQL takes the same lock in its opening statement
(`lock_lateral`, tenants.opening.Lateral): the same compiled SELECT, given the
workspace's id that the opening function has just applied, joined LATERAL to
the function's row, so BEGIN, that statement, the reply's last write and COMMIT
are the whole request. `taken_in_opening` hands the row to the reply's gate.
"""

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import Query
from django.db.models.sql.datastructures import Join

from helpdesk.compiled import CompiledQuery, _RowPlan
from helpdesk.models import Conversation
from helpdesk.services import sla
from helpdesk.webhooks.models import WebhookEndpoint
from tenants.context import _current_tenant_id, opened_along
from tenants.opening import Lateral

# The columns a reply reads from the locked row: post_reply's rules (status,
# channel, threads, the public limit, the hold, the signature, the warnings'
# deflection phrases), the response clock's stop and its care fact with the
# rollups' dimensions (helpdesk.services.sla.stop_for_response), the columns
# the reply writes back, and the conversation state a webhook event carries
# (helpdesk.services.webhook_outbox). The other 18 conversation and 11 brand
# columns (the preview, the engagement figures, the spike settings...) are not
# read: 74 -> 45 columns cut PostgreSQL's CPU for the lock and the web process's
# for making the row. A column read that is not here costs a query of its own
# (Django loads a deferred field on first access); the reply's statement counts
# are asserted and tests/helpdesk/test_reply_lock_columns.py runs the reply's
# paths with such loads refused.
CONVERSATION_COLUMNS = (
    "id",
    "tenant_id",
    "brand_id",
    "social_account_id",
    "contact_id",
    "platform",
    "origin",
    "public_thread_ref",
    "private_thread_ref",
    "channel_state",
    "awaiting_private",
    "mentions_account",
    "public_reply_count",
    "status",
    "sentiment",
    "assignee_id",
    "last_answered_by_id",
    "last_customer_message_at",
    "first_response_at",
    "sla_lane",
    "sla_kind",
    "sla_started_at",
    "sla_run_started_at",
    "sla_used_seconds",
    "sla_target_seconds",
    "sla_due_at",
    "sla_due_soon_at",
    "sla_breached_at",
    "follower_band",
    "no_reply_reason",
    "queue_at",
    "last_activity_at",
)
BRAND_COLUMNS = (
    "id",
    "tenant_id",
    "timezone",
    "business_hours",
    "public_reply_limit",
    "send_hold_seconds",
    "private_first_allowed",
    "pause_while_pending",
    "signature_rules",
    "deflection_phrases",
)
_COLUMNS = (*CONVERSATION_COLUMNS, *(f"brand__{name}" for name in BRAND_COLUMNS))

_NEW_MESSAGE_ID = RawSQL(
    "nextval(pg_get_serial_sequence('helpdesk_message', 'id'))", ()
)


def _locked(pk: int) -> QuerySet[Conversation]:
    rows = (
        Conversation.objects.select_for_update(of=("self",))
        # Not the account: the reply needs its id only (the message's
        # account_id); its 19 columns and join were 15% of the lock's CPU.
        .select_related("brand")
        .annotate(**sla.brand_time_annotations("helpdesk_conversation", policy=False))
        .annotate(
            has_webhook_endpoints=Exists(
                WebhookEndpoint.objects.filter(
                    tenant_id=OuterRef("tenant_id"), is_active=True
                )
            )
        )
    )
    # Compiled once per connection, so the vendor is that connection's.
    if connection.vendor == "postgresql":
        rows = rows.annotate(new_message_id=_NEW_MESSAGE_ID)
    # No ORDER BY (one row): the model's inbox order let the planner find the
    # row by walking the tenant's (tenant, queue_at, last_activity_at, id) index
    # on tables without statistics instead of reading the primary key.
    rows = rows.filter(pk=pk).order_by().only(*_COLUMNS)
    _join_brand_outer(rows.query)
    return rows


def _join_brand_outer(query: Query) -> None:
    """Join the brand with LEFT OUTER JOIN (`select_related` reuses this join).

    An INNER JOIN on `brand_id` proves `brand_id IS NOT NULL`, the predicate of
    the partial brand index (tenant_id, brand_id). On tables without
    statistics that index, deduplicated into a page or two, tied with the key's
    and won: the lock read every conversation of the tenant through it (1,439
    rows removed by filter, 0.86-0.94 ms of PostgreSQL CPU against 0.13-0.15 ms
    by the key). An outer join proves nothing about `brand_id`. The brand always
    exists (a composite foreign key in the same tenant), so the row is the same.
    """
    joined = query.setup_joins(["brand"], Conversation._meta, query.get_initial_alias())
    alias = joined.joins[-1]
    join = query.alias_map[alias]
    if not isinstance(join, Join):  # the brand is a join, never the base table
        raise TypeError(f"expected the brand's join, got {join!r}")
    query.alias_map[alias] = join.promote()


_LOCKED = CompiledQuery(_locked, [int])


def lock_conversation_for_reply(conversation_id: int) -> Conversation:
    """The conversation locked until the transaction ends, brand joined (not
    the account: reading `social_account` is a query), the brand's holidays
    preloaded, and `has_webhook_endpoints` (read
    in this transaction), and on PostgreSQL `new_message_id` (an id taken for
    the reply's message); DoesNotExist when it is gone. Call it inside a
    transaction."""
    locked = _LOCKED.first(conversation_id)
    if locked is None:
        raise Conversation.DoesNotExist("No such conversation")
    return _ready(locked)


def _ready(locked: Conversation) -> Conversation:
    sla.preload_annotated(locked, locked.brand)
    vars(locked)["_reply_locked_in"] = _outermost_block()
    return locked


@dataclass(slots=True)
class TakenLock:
    """The reply's row lock as the opening statement took it: the conversation
    (None when no row of the workspace has that id), for one reply."""

    conversation_id: int
    conversation: Conversation | None
    used: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class _Shape:
    """The row lock's compiled statement as a lateral read (one connection)."""

    parts: tuple[str, ...]  # its SQL, split where the workspace's id goes
    params: tuple[Any, ...]  # its other parameters, with 0 for the id's
    id_places: tuple[int, ...]  # where the conversation's id goes in them
    columns: int
    compiled: Any  # the CompiledQuery's shape: its row plan makes the rows
    source: CompiledQuery[Conversation]  # the CompiledQuery it was taken from


_SHAPES: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Shape] = (
    weakref.WeakKeyDictionary()
)
_PLACEHOLDER = re.compile(r"%%|%s")


def _shape() -> _Shape:
    wrapper = connections[_LOCKED.using]
    shape = _SHAPES.get(wrapper)
    if shape is not None and shape.source is _LOCKED:
        return shape
    # _LOCKED's own statement and parameter places (helpdesk.compiled): its
    # markers are bound with a stand-in workspace id that never reaches SQL.
    opened = _current_tenant_id.set(0)
    try:
        compiled, params = _LOCKED._bind((0,))
    finally:
        _current_tenant_id.reset(opened)
    if not compiled.planned:  # as first() plans it
        compiled.row_plan = _RowPlan.of(_LOCKED._queryset, compiled)
        compiled.planned = True
    tenant_places, id_places = (set(places) for places in compiled.positions)
    parts: list[str] = []
    kept: list[Any] = []
    kept_ids: list[int] = []
    start = n = 0
    for found in _PLACEHOLDER.finditer(compiled.sql):
        if found.group() == "%%":
            continue
        if n in tenant_places:
            parts.append(compiled.sql[start : found.start()])
            start = found.end()
        else:
            if n in id_places:
                kept_ids.append(len(kept))
            kept.append(params[n])
        n += 1
    parts.append(compiled.sql[start:])
    compiler = compiled.compiler
    key = compiler.select[compiler.klass_info["select_fields"][0]][0].target
    if n != len(params) or compiler.has_extra_select or not key.primary_key:
        raise ValueError("the row lock's statement is not one the lateral reads")
    shape = _Shape(
        parts=tuple(parts),
        params=tuple(kept),
        id_places=tuple(kept_ids),
        columns=len(compiler.select),
        compiled=compiled,
        source=_LOCKED,
    )
    _SHAPES[wrapper] = shape
    return shape


def lock_lateral(conversation_id: int, role: str, scope: str) -> Lateral:
    """The reply's row lock as a read in the opening statement of a token
    request (tenants.opening.Lateral) that needs `role` and `scope`: the
    result (`along`) is a TakenLock. PostgreSQL only."""
    shape = _shape()
    params = list(shape.params)
    for place in shape.id_places:
        params[place] = conversation_id

    def make(values: Sequence[Any]) -> TakenLock:
        return TakenLock(conversation_id, _made(shape, values))

    return Lateral(shape.parts, params, shape.columns, role, scope, make)


def _made(shape: _Shape, values: Sequence[Any]) -> Conversation | None:
    """The locked conversation from the lateral's columns, as
    lock_conversation_for_reply makes it (None for the columns of no row)."""
    compiled = shape.compiled
    if values[compiled.compiler.klass_info["select_fields"][0]] is None:
        return None  # the key's column: NULL only when the join found nothing
    plan = compiled.row_plan
    if plan is None or pre_init.receivers or post_init.receivers:
        found = shape.source._run(compiled, list(shape.params), [tuple(values)])
        locked = found[0]
    else:
        locked = plan.instance(values, shape.source._queryset.db)
    return _ready(locked)


def taken_in_opening(conversation_id: int) -> TakenLock | None:
    """The lock the request's opening statement took for this conversation in
    this transaction, once; None when none was (then lock it here)."""
    taken = opened_along()
    if not isinstance(taken, TakenLock):
        return None
    if taken.used or taken.conversation_id != conversation_id:
        return None
    if taken.conversation is not None and not locked_in_this_transaction(
        taken.conversation
    ):
        return None
    taken.used = True
    return taken


def locked_in_this_transaction(conversation: Conversation) -> bool:
    """Whether `conversation` came from lock_conversation_for_reply in the
    transaction that is running now (its lock and `new_message_id` still hold).
    A row locked in a transaction that has ended is not: lock it again."""
    block = vars(conversation).get("_reply_locked_in")
    return block is not None and block is _outermost_block()


def _outermost_block() -> object | None:
    # The outermost `atomic` of the transaction: a new object per transaction.
    blocks = connection.atomic_blocks
    return blocks[0] if blocks else None
