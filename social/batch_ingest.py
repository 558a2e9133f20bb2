"""Stored webhook deliveries, many at a time: claim, parse, route, record, mark.

One transaction holds the claim (`FOR UPDATE ... SKIP LOCKED`), every item's rows
and the events' final status, so a crash loses and doubles nothing: either all of
it commits, or the events are `received` again and their tasks (or the sweep)
process them. Items are grouped by tenant (one `ChannelRoute` query for the whole
batch) and each group is recorded set-based (helpdesk.services.inbound_batch).
Live events are sent after the commit.

When every routed item is one tenant's (the usual batch), that transaction is
the tenant's own (`open_tenant_context`, no savepoint): the statement that
allocates the tenant's event sequences also marks the events, the followers'
lookup runs before it, and COMMIT goes with it (tenants.last_write), so the
tenant's counter row is held for that one statement. A batch of several
tenants, decided from its routing before anything is written, records the own
event's tenant's group that way (with the events of no tenant) and each other
tenant's group after its commit, in a transaction of its own the same way (its
events claimed again by id: held until the first commit, then still `received`
for their own tasks should this worker die). Otherwise (no tenant, an event
with items of two tenants, or a unique key a concurrent worker just wrote) the
claim is undone and taken again: one transaction, each tenant's group in a
savepoint (`tenant_context`), the events marked after them.

What takes the one-at-a-time path (social.ingest.record_for_account), inside the
same tenant transaction and after the group's batch, in arrival order: untagged
public items in threads Earshot did not follow before the batch (listening rules,
waiting), the later items of their authors, items the batch defers (after an away
reply), and items that waited for a thread this batch opened. A whole group goes
one at a time when its batch hits a unique key that a concurrent worker just
wrote.
"""

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import Q, QuerySet
from django.utils import timezone

from helpdesk.compiled import CompiledQuery
from helpdesk.models import Conversation, Identity
from helpdesk.services import sla, writebatch
from helpdesk.services.bulkrows import any_of, row_loader, update_rows
from helpdesk.services.contacts import refresh_identity, refresh_observer
from helpdesk.services.inbound_batch import Last, record_inbound_batch
from social.connectors import get_connector
from social.connectors.base import Author, InboundItem, WebhookItem, item_from_dict
from social.ingest import process_one_webhook_event, record_for_account
from social.models import ChannelRoute, SocialAccount, WaitingItem, WebhookEvent
from tenants.context import open_tenant_context, tenant_context
from tenants.last_write import commit_with_last_write
from tenants.models import Tenant

logger = logging.getLogger(__name__)

Status = WebhookEvent.Status
DONE = (Status.PROCESSED, Status.MALFORMED)


class BatchFailed(Exception):
    """The batch rolled back on an error that is not the database's; `claimed`
    are the events it held (the cause is chained)."""

    def __init__(self, claimed: list[int]) -> None:
        super().__init__(f"batch of {len(claimed)} webhook events failed")
        self.claimed = claimed


@dataclass
class _Event:
    row: WebhookEvent
    items: list[WebhookItem] = field(default_factory=list)
    routed: int = 0
    tenant_id: int | None = None
    # The tenants whose groups hold its items (a deleted tenant's are not).
    groups: set[int] = field(default_factory=set)


def process_batch(event_id: int, *, limit: int) -> str:
    """Process `event_id` with up to `limit - 1` claimable neighbours; returns its
    status. Raises BatchFailed (nothing of the batch committed) on an error that is
    not the database's; database errors propagate as they are.

    A batch of several tenants commits the own event's tenant's group first
    (with the events of no tenant), then each other tenant's group in a
    transaction of its own (_later): a failure there leaves the own event's
    outcome committed and that group's events to themselves."""
    claimed: list[int] = []
    hydrate = False
    parsed: dict[int, _Parse] = {}
    later: list[_Later] = []
    try:
        outcome = _one_tenant(event_id, limit, claimed, parsed)
        if outcome is None:
            claimed.clear()
            with transaction.atomic():
                own = _own(event_id)
                if own is None:
                    return "missing"
                if own.status in DONE:
                    return own.status
                rows = [own, *_neighbours(event_id, limit - 1)]
                claimed.extend(row.pk for row in rows)
                batch, hydrate = _parsed(rows, event_id, parsed)
                _record(batch)
                _mark(batch)
                status = own.status
        else:
            status, hydrate, later = outcome
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        raise BatchFailed(claimed or [event_id]) from error
    for group in later:
        _later(group)
    if hydrate:
        return process_one_webhook_event(event_id)
    return status


class _NotOneTenant(Exception):
    """The claimed batch is not one tenant's (or raced): undo the claim."""


class _Early(Exception):
    """The task's own event is missing or done: nothing to claim."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class _Later:
    """Another tenant's group of a claimed batch, recorded after the batch's
    commit in a transaction of its own: its events (claim order) and the
    routes the batch read."""

    tenant: Tenant
    events: list[_Event]
    routes: dict[tuple[str, str], ChannelRoute]


@dataclass
class _Claim:
    """A claimed batch (or a tenant's part of it) whose routed items are all
    one tenant's."""

    tenant: Tenant
    own: WebhookEvent | None
    batch: list[_Event]
    routed: list[tuple[ChannelRoute, InboundItem]]
    hydrate: bool
    later: list[_Later] = field(default_factory=list)
    marked: bool = False
    stack: ExitStack = field(default_factory=ExitStack)


def _one_tenant(
    event_id: int, limit: int, claimed: list[int], parsed: dict[int, "_Parse"]
) -> tuple[str, bool, list[_Later]] | None:
    """The batch as a tenant's own outermost transaction (PostgreSQL): (the own
    event's status, whether it is to be hydrated, the other tenants' groups to
    record after it, each in its own transaction: _later). None when it cannot
    be (nothing of it committed; the parses are kept in `parsed`): the caller
    claims again, one savepoint per tenant.

    The claim and the routing run first (no tenant table is read), then the
    tenant's setting (tenants.context.open_tenant_context). With no savepoint
    open, the statement that allocates the tenant's event sequences can be the
    transaction's last (record_inbound_batch's `last`): the events' final
    status joins it, the followers' lookup runs before it, and COMMIT goes
    with it (tenants.last_write), so the tenant's counter row is released at
    once instead of after the marking and the Python between.

    Items of several tenants, decided from the routing before anything is
    written: this transaction records the group of the own event's tenant (or
    the lowest tenant id when the own event has none) and marks the events of
    no tenant with it; the other tenants' events stay `received`, held until
    the commit, and each group is claimed again by id in its own transaction
    (_later). None (the old way) when no item is routed to a live tenant, when
    one event holds items of two tenants (its items commit together), or when
    a unique key a concurrent worker just wrote rolls the batch back (no
    savepoint to return to): then the caller's claim records the group in a
    savepoint (one at a time after such a race).
    """
    if connection.vendor != "postgresql":
        return None

    def opener() -> _Claim:
        own = _own(event_id)
        if own is None:
            raise _Early("missing")
        if own.status in DONE:
            raise _Early(own.status)
        rows = [own, *_neighbours(event_id, limit - 1)]
        claimed.extend(row.pk for row in rows)
        batch, hydrate = _parsed(rows, event_id, parsed)
        routes = _routes(_keys(batch))
        groups, tenants = _grouped(batch, routes)
        if not groups or any(len(event.groups) > 1 for event in batch):
            raise _NotOneTenant
        first = min(groups)
        if len(groups) > 1:
            own_groups = [event.groups for event in batch if event.row.pk == event_id]
            if own_groups and own_groups[0]:
                (first,) = own_groups[0]
        here = [event for event in batch if event.groups <= {first}]
        later = [
            _Later(
                tenants[tenant_id],
                [event for event in batch if event.groups == {tenant_id}],
                routes,
            )
            for tenant_id in sorted(groups)
            if tenant_id != first
        ]
        _set_tenant(first)
        return _Claim(tenants[first], own, here, groups[first], hydrate, later)

    try:
        claim = _as_tenant(opener)
    except _Early as early:
        return early.status, False, []
    except _NotOneTenant:
        claimed.clear()
        return None
    except IntegrityError:
        claimed.clear()
        parsed.clear()  # the items went through a recording: parsed afresh
        return None
    own = claim.own
    assert own is not None  # noqa: S101 - the opener's claim has it
    return own.status, claim.hydrate, claim.later


def _as_tenant(opener: Callable[[], _Claim]) -> _Claim:
    """Record the claim `opener` takes as its tenant's outermost transaction,
    the events' final status in the counter statement (or after it), COMMIT
    with it."""
    with open_tenant_context(opener) as claim, ExitStack() as claim.stack:
        record_items(_entries(claim.routed), last=partial(_mark_last, claim))
        if not claim.marked:
            _mark(claim.batch)
    return claim


def _set_tenant(tenant_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])


def _later(group: _Later) -> None:
    """Another tenant's group of a batch that committed: its events that are
    still `received` and not held by another worker, claimed again by id (its
    items parsed and routed already), recorded as the tenant's own
    transaction as the batch's first group was. A unique key a concurrent
    worker just wrote: claimed again and recorded in a savepoint (one at a time
    after the race). Another error that is not the database's: each event
    alone (process_batch), the failing one left to its task; the database's
    propagate (the events stay `received`, for their tasks)."""
    ids = [event.row.pk for event in group.events]

    def opener() -> _Claim:
        rows = {row.pk: row for row in _claimed(_AGAIN, [Status.RECEIVED.value, ids])}
        if not rows:
            raise _Early("")
        here = []
        for event in group.events:
            if event.row.pk in rows:
                event.row = rows[event.row.pk]
                here.append(event)
        groups, _tenants = _grouped(here, group.routes)
        _set_tenant(group.tenant.pk)
        return _Claim(group.tenant, None, here, groups.get(group.tenant.pk, []), False)

    try:
        _as_tenant(opener)
    except _Early:
        return
    except (OperationalError, InterfaceError):
        raise
    except IntegrityError:
        logger.info(
            "batch of tenant %s raced; recording one at a time", group.tenant.pk
        )
        with transaction.atomic():
            rows = _claimed(_AGAIN, [Status.RECEIVED.value, ids])
            # The items went through a recording: parsed afresh.
            batch, _hydrate = _parsed(rows, 0)
            _record(batch)
            _mark(batch)
    except Exception as error:
        logger.warning(
            "group of %s webhook events of tenant %s failed (%r); one by one",
            len(ids),
            group.tenant.pk,
            error,
        )
        for event_id in ids:
            try:
                process_batch(event_id, limit=1)
            except BatchFailed:
                logger.warning("webhook event %s failed; its task retries", event_id)


def _mark_last(
    claim: _Claim,
    opened: list[Conversation],
    batch: writebatch.WriteBatch,
) -> bool:
    """record_inbound_batch's `last` for a claim: when no item waits for a
    thread the batch opens, the events' final status joins the batch's
    statement (True); else (False) the followers are recorded after it, as
    record_items does, and the events marked after them."""
    threads = [
        (account, conversation.public_thread_ref)
        for conversation in opened
        if conversation.public_thread_ref
        and (account := conversation.social_account) is not None
    ]
    if threads:
        # The waiting side's lock (social.waiting), taken before the counter:
        # an item that parks from now on finds the thread recorded.
        _lock_threads(threads)
        if _waiting(threads).exists():
            return False
    _mark(claim.batch, batch)
    claim.marked = True
    # Only now: a one-at-a-time item recorded before (or instead of) this
    # statement must not commit with its own.
    claim.stack.enter_context(commit_with_last_write())
    return True


def _own(event_id: int) -> WebhookEvent | None:
    """The task's own event, locked (waiting for a worker that holds it)."""
    if connection.vendor == "postgresql":
        rows = _claimed(_OWN, [event_id])
        return rows[0] if rows else None
    return WebhookEvent.objects.select_for_update().filter(pk=event_id).first()


def _neighbours(event_id: int, limit: int) -> list[WebhookEvent]:
    """`received` events whose task has not started (attempts 0: an event that
    failed once is retried on its own), oldest first, skipping held ones."""
    if limit <= 0:
        return []
    if connection.vendor == "postgresql":
        return _claimed(_NEIGHBOURS, [Status.RECEIVED.value, event_id, limit])
    return list(
        WebhookEvent.objects.select_for_update(skip_locked=True)
        .filter(status=Status.RECEIVED, attempts=0)
        .exclude(pk=event_id)
        .order_by("received_at", "pk")[:limit]
    )


# The claim's two statements on PostgreSQL, as the ORM wrote them, with their
# rows made by bulkrows.row_loader: the ORM's query building and
# Model.__init__ were about a twentieth of a batch's CPU.
# The table and column names are the model's.
_SELECT = "SELECT {} FROM {}".format(  # noqa: S608
    ", ".join(f'"{f.column}"' for f in WebhookEvent._meta.concrete_fields),
    f'"{WebhookEvent._meta.db_table}"',
)
_OWN = _SELECT + ' WHERE "id" = %s ORDER BY "id" LIMIT 1 FOR UPDATE'
# A batch's later group claimed again by id: those still `received`, not held.
_AGAIN = (
    _SELECT + ' WHERE "status" = %s AND "id" = ANY(%s::bigint[])'
    ' ORDER BY "received_at", "id" FOR UPDATE SKIP LOCKED'
)
_NEIGHBOURS = (
    _SELECT + ' WHERE "status" = %s AND "attempts" = 0 AND NOT ("id" = %s)'
    ' ORDER BY "received_at", "id" LIMIT %s FOR UPDATE SKIP LOCKED'
)
_load = row_loader(
    WebhookEvent, [f.attname for f in WebhookEvent._meta.concrete_fields]
)


def _claimed(sql: str, params: list[Any]) -> list[WebhookEvent]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    alias = connection.alias
    return [_load(alias, row) for row in rows]


_Parse = list[WebhookItem] | str  # an event's items, or why it is malformed


def _parsed(
    rows: list[WebhookEvent], own_id: int, parsed: dict[int, _Parse] | None = None
) -> tuple[list[_Event], bool]:
    """The claimed events with their items; a malformed one is marked so (and
    kept); one with items to hydrate leaves the batch (True when it is the
    claimer's own: it runs after the commit). `parsed`: the events' parses by
    id, read and kept (a stored body never changes)."""
    batch: list[_Event] = []
    hydrate = False
    known = parsed if parsed is not None else {}
    for row in rows:
        parse = known.get(row.pk)
        if parse is None:
            try:
                parse = get_connector(row.platform).parse_webhook(bytes(row.body))
            except (ValueError, KeyError, TypeError) as exc:
                parse = str(exc)
            known[row.pk] = parse
        if isinstance(parse, str):
            row.status, row.error = Status.MALFORMED, parse
            batch.append(_Event(row))
            continue
        if any(each.item.needs_hydration for each in parse):
            hydrate = hydrate or row.pk == own_id
            continue
        batch.append(_Event(row, parse))
    return batch, hydrate


def _record(batch: list[_Event]) -> None:
    """Route every item (one query) and record each tenant's items together."""
    groups, tenants = _grouped(batch)
    # Tenants in id order: two batches take the tenants' counter rows in one order.
    for tenant_id in sorted(groups):
        _record_group(tenants[tenant_id], groups[tenant_id])


def _keys(batch: list[_Event]) -> set[tuple[str, str]]:
    """The routing keys of the batch's items (its malformed events have none)."""
    return {
        (event.row.platform, each.account_external_id)
        for event in batch
        if event.row.status != Status.MALFORMED
        for each in event.items
    }


def _grouped(
    batch: list[_Event],
    routes: dict[tuple[str, str], ChannelRoute] | None = None,
) -> tuple[dict[int, list[tuple[ChannelRoute, InboundItem]]], dict[int, Tenant]]:
    """Route every item (one query, unless `routes` were read already): the
    items to record by tenant (a deleted tenant's are routed, not recorded) and
    the tenants; sets each event's `routed`, `tenant_id` and `groups`."""
    pending = [event for event in batch if event.row.status != Status.MALFORMED]
    if routes is None:
        routes = _routes(_keys(pending))
    groups: dict[int, list[tuple[ChannelRoute, InboundItem]]] = defaultdict(list)
    tenants: dict[int, Tenant] = {}
    for event in pending:
        event.routed, event.tenant_id, event.groups = 0, None, set()
        for each in event.items:
            route = routes.get((event.row.platform, each.account_external_id))
            if route is None:
                logger.info(
                    "unroutable %s item for account %s",
                    event.row.platform,
                    each.account_external_id,
                )
                continue
            event.routed += 1
            event.tenant_id = route.tenant_id
            tenants[route.tenant_id] = route.tenant
            if route.tenant.status != Tenant.Status.DELETED:
                groups[route.tenant_id].append((route, each.item))
                event.groups.add(route.tenant_id)
    return groups, tenants


def _routes(keys: set[tuple[str, str]]) -> dict[tuple[str, str], ChannelRoute]:
    if not keys:
        return {}
    if connection.vendor == "postgresql":
        return _routes_pg(sorted(keys))
    by_platform: dict[str, set[str]] = defaultdict(set)
    for platform, account in keys:
        by_platform[platform].add(account)
    query = Q()
    for platform, accounts in by_platform.items():
        query |= Q(platform=platform, external_account_id__in=accounts)
    return {
        (route.platform, route.external_account_id): route
        for route in ChannelRoute.objects.select_related("tenant").filter(query)
    }


def _routes_pg(keys: list[tuple[str, str]]) -> dict[tuple[str, str], ChannelRoute]:
    """_routes in one statement of constant text (each key through the routes'
    unique key), the rows made by bulkrows.row_loader with their tenant cached
    as select_related caches it."""
    with connection.cursor() as cursor:
        cursor.execute(_ROUTES, [[key[0] for key in keys], [key[1] for key in keys]])
        rows = cursor.fetchall()
    alias, width = connection.alias, len(_ROUTE_COLUMNS)
    found = {}
    for row in rows:
        route = _load_route(alias, row[:width])
        _ROUTE_TENANT.set_cached_value(route, _load_tenant(alias, row[width:]))
        found[(route.platform, route.external_account_id)] = route
    return found


_ROUTE_COLUMNS = [f.attname for f in ChannelRoute._meta.concrete_fields]
_TENANT_COLUMNS = [f.attname for f in Tenant._meta.concrete_fields]
_ROUTE_TENANT: Any = ChannelRoute._meta.get_field("tenant")
_load_route = row_loader(ChannelRoute, _ROUTE_COLUMNS)
_load_tenant = row_loader(Tenant, _TENANT_COLUMNS)
# The table and column names are the models'.
_ROUTES = (
    "SELECT "  # noqa: S608
    + ", ".join(f'r."{f.column}"' for f in ChannelRoute._meta.concrete_fields)
    + ", "
    + ", ".join(f't."{f.column}"' for f in Tenant._meta.concrete_fields)
    + f" FROM unnest(%s::text[], %s::text[]) AS k(platform, account)"
    f' JOIN "{ChannelRoute._meta.db_table}" AS r'
    ' ON r."platform" = k.platform AND r."external_account_id" = k.account'
    f' JOIN "{Tenant._meta.db_table}" AS t ON t."id" = r."tenant_id"'
)


def _record_group(
    tenant: Tenant, routed: list[tuple[ChannelRoute, InboundItem]]
) -> None:
    try:
        with tenant_context(tenant):
            record_items(_entries(routed))
    except IntegrityError:
        # A concurrent worker wrote one of the same items or authors first: the
        # one-at-a-time path settles each item against it.
        logger.info("batch of tenant %s raced; recording one at a time", tenant.pk)
        with tenant_context(tenant):
            for account, item in _entries(routed):
                record_for_account(account, item)


def _entries(
    routed: list[tuple[ChannelRoute, InboundItem]],
) -> list[tuple[SocialAccount, InboundItem]]:
    # Each account brings its brand's SLA policy and holidays (PostgreSQL), so no
    # clock that starts in the batch reads them again.
    ids = {route.account_id for route, _item in routed}
    rows = (
        _ACCOUNT.rows(*ids) if len(ids) == 1 else _accounts_query().filter(pk__in=ids)
    )
    accounts = {}
    for account in rows:
        sla.preload_annotated(account, account.brand)
        accounts[account.pk] = account
    return [
        (accounts[route.account_id], item)
        for route, item in routed
        if route.account_id in accounts
    ]


def _accounts_query() -> QuerySet[SocialAccount]:
    return SocialAccount.objects.select_related("tenant", "brand").annotate(
        **sla.brand_time_annotations(SocialAccount._meta.db_table)
    )


# A batch's items are mostly for one account: its query is compiled once.
_ACCOUNT = CompiledQuery(lambda pk: _accounts_query().filter(pk=pk), [int])


def record_items(
    entries: list[tuple[SocialAccount, InboundItem]], *, last: Last | None = None
) -> list[bool]:
    """Record one tenant's items as record_for_account would, in order; True for
    each item recorded new. Call inside the tenant's context.

    Items that need no listening decision go through one set-based batch; the
    others (and their authors' later items, to keep each conversation's order)
    follow one at a time, after the followers that waited for a thread the batch
    opened.

    `last`: the caller writes nothing after these items but what `last` adds
    (record_inbound_batch's `last`). When every item goes in the set-based
    batch, it is passed on; when it returns True, no item waits for a thread
    the batch opened (`last` looked, under the threads' locks) and the batch's
    statement was the last.
    """
    if not entries:
        return []
    followed = _followed(entries)
    simple: list[int] = []
    alone: list[int] = []
    # An item that goes alone holds back its author's later items and the later
    # items of its thread (one of them could open the thread before it).
    held: set[tuple[str, str]] = set()
    held_threads: set[tuple[int, str]] = set()
    for index, (account, item) in enumerate(entries):
        author = (item.platform, item.author.external_id)
        thread = (account.pk, item.thread_ref or item.external_id)
        if (
            author in held
            or (item.visibility == "public" and thread in held_threads)
            or _needs_rule(account, item, followed)
        ):
            held.add(author)
            if item.visibility == "public":
                held_threads.add(thread)
            alone.append(index)
        else:
            simple.append(index)
    tenant: Tenant = entries[0][0].tenant
    profiles = _Profiles(entries)
    watching = refresh_observer.set(profiles)
    committed = False

    def last_write(opened: list[Conversation], batch: writebatch.WriteBatch) -> bool:
        nonlocal committed
        assert last is not None  # noqa: S101 - passed on only then
        committed = last(opened, batch)
        return committed

    try:
        outcome = record_inbound_batch(
            tenant,
            [entries[i] for i in simple],
            last=last_write if last is not None and not alone else None,
        )
        created = [False] * len(entries)
        opened: list[tuple[SocialAccount, str]] = []
        opened_at: dict[tuple[int, str], int] = {}
        for position, result in enumerate(outcome.results):
            if result is None:
                continue
            index = simple[position]
            created[index] = result.created
            if result.opened and entries[index][1].visibility == "public":
                ref = result.conversation.public_thread_ref
                opened.append((entries[index][0], ref))
                opened_at.setdefault((entries[index][0].pk, ref), index)
        if not committed:
            _record_followers(opened, profiles, opened_at)
        for index in sorted([*alone, *(simple[p] for p in outcome.deferred)]):
            # Its refresh and those of the waiting followers it records (when
            # it opens a thread) take its place.
            profiles.place = index
            created[index] = record_for_account(*entries[index])
    finally:
        refresh_observer.reset(watching)
    profiles.settle()
    return created


_PROFILE_FIELDS = ("handle", "display_name", "followers", "profile_url")


class _Profiles:
    """The author profile refreshes of one record_items call, each with its place
    in the order one at a time would make them (the entry index of its item, or of
    the item whose recording it follows: a waiting follower comes right after its
    thread's opener).

    The batch refreshes before the followers and the items that go alone, so an
    author's older item can refresh last; `settle` then gives each such identity
    the profile of arrival order (one UPDATE, only when it differs).
    """

    def __init__(self, entries: list[tuple[SocialAccount, InboundItem]]) -> None:
        self.place_of = {id(item.author): n for n, (_a, item) in enumerate(entries)}
        # The place of the refreshes to come, once the set-based batch is done.
        self.place: int | None = None
        self.seen: list[tuple[int, int, Identity, Author]] = []

    def __call__(self, identity: Identity, author: Author) -> None:
        place = self.place
        if place is None:
            place = self.place_of.get(id(author), len(self.place_of))
        self.seen.append((place, len(self.seen), identity, author))

    def settle(self) -> None:
        by_identity: dict[int, list[tuple[int, int, Identity, Author]]] = {}
        for seen in self.seen:
            by_identity.setdefault(seen[2].pk, []).append(seen)
        for refreshes in by_identity.values():
            in_order = sorted(refreshes, key=lambda seen: (seen[0], seen[1]))
            if [seen[1] for seen in in_order] == [seen[1] for seen in refreshes]:
                continue
            # The object of the last refresh holds the row as it was written.
            identity = refreshes[-1][2]
            before = {name: getattr(identity, name) for name in _PROFILE_FIELDS}
            for *_place, author in in_order:
                refresh_identity(identity, author)
            changed = [n for n in _PROFILE_FIELDS if getattr(identity, n) != before[n]]
            if changed:
                identity.save(update_fields=changed)


def _needs_rule(
    account: SocialAccount, item: InboundItem, followed: set[tuple[int, str]]
) -> bool:
    """social.ingest._needs_listening, with the followed threads read at once."""
    if item.visibility != "public" or item.mentions_account:
        return False
    if item.kind in ("comment", "review"):
        return False
    return (account.pk, item.thread_ref) not in followed


def _followed(entries: list[tuple[SocialAccount, InboundItem]]) -> set[tuple[int, str]]:
    """(account, thread) pairs of the untagged public items that Earshot follows."""
    asked = {
        (account.pk, item.thread_ref)
        for account, item in entries
        if item.visibility == "public"
        and not item.mentions_account
        and item.kind not in ("comment", "review")
    }
    if not asked:
        return set()
    rows = Conversation.objects.filter(
        social_account_id__in={account for account, _ref in asked},
        public_thread_ref__in={ref for _account, ref in asked},
    ).values_list("social_account_id", "public_thread_ref")
    return {(account or 0, ref) for account, ref in rows} & asked


def _record_followers(
    opened: list[tuple[SocialAccount, str]],
    profiles: _Profiles,
    opened_at: dict[tuple[int, str], int],
) -> None:
    """Record the items that waited for a thread the batch opened (what
    record_for_account does after an opener), with one lock statement and one
    query for all the threads; each follower's profile refresh takes its opener's
    place."""
    if not opened:
        return
    _lock_threads(opened)
    rows = list(
        _waiting(opened)
        .select_for_update(skip_locked=True)
        .order_by("created_at", "pk")
    )
    if not rows:
        return
    accounts = {account.pk: account for account, _thread in opened}
    WaitingItem.objects.filter(pk__in=[row.pk for row in rows]).delete()
    for row in rows:
        follower = item_from_dict(row.item)
        profiles.place = opened_at[(row.account_id, row.thread_ref)]
        record_for_account(accounts[row.account_id], follower, may_wait=False)


def _waiting(threads: list[tuple[SocialAccount, str]]) -> QuerySet[WaitingItem]:
    """The items that wait for one of the threads."""
    by_account: dict[int, set[str]] = defaultdict(set)
    for account, thread in threads:
        by_account[account.pk].add(thread)
    query = Q()
    for account_id, refs in by_account.items():
        query |= Q(Q(account_id=account_id), any_of(WaitingItem, "thread_ref", refs))
    return WaitingItem.objects.filter(query)


def _lock_threads(threads: list[tuple[SocialAccount, str]]) -> None:
    """waiting.lock_thread for many threads in one statement (the same keys, taken
    in key order so two batches cannot deadlock on them)."""
    if connection.vendor != "postgresql":
        return
    keys = sorted(
        {
            int.from_bytes(
                hashlib.blake2b(
                    f"{account.tenant_id}:{account.pk}:{thread}".encode(),
                    digest_size=8,
                ).digest(),
                "big",
            )
            - 2**63
            for account, thread in threads
        }
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k",
            [keys],
        )


def _mark(batch: list[_Event], into: writebatch.WriteBatch | None = None) -> None:
    """The events' final status, in the transaction of their items; `into`: as
    part of that write batch's statement (PostgreSQL)."""
    now = timezone.now()
    rows = []
    for event in batch:
        row = event.row
        if row.status != Status.MALFORMED:
            row.status = (
                Status.PROCESSED
                if event.routed or not event.items
                else Status.UNROUTABLE
            )
            row.error = ""
            row.tenant_id = event.tenant_id
        row.items = len(event.items)
        row.processed_at = now
        rows.append(row)
    if not rows:
        return
    outcomes = {(r.status, r.error, r.items, r.tenant_id) for r in rows}
    if len(outcomes) == 1 and connection.vendor == "postgresql":
        # The usual batch: every event ends alike, so one UPDATE by key with
        # the values once (no JSON document of the rows).
        ((status, error, items, tenant_id),) = outcomes
        params: list[Any] = [status, error, items, tenant_id, now, [r.pk for r in rows]]
        if into is not None:
            into.add(_MARK, params)
            return
        with connection.cursor() as cursor:
            cursor.execute(_MARK, params)
    elif into is not None:
        into.add(
            _MARK_EACH,
            [
                now,
                [r.pk for r in rows],
                [r.status for r in rows],
                [r.error for r in rows],
                [r.items for r in rows],
                [r.tenant_id for r in rows],
            ],
        )
    else:
        update_rows(rows, ["status", "error", "items", "tenant_id", "processed_at"])


_MARK = (
    f'UPDATE "{WebhookEvent._meta.db_table}" SET "status" = %s, "error" = %s,'  # noqa: S608
    ' "items" = %s, "tenant_id" = %s, "processed_at" = %s'
    ' WHERE "id" = ANY(%s::bigint[])'
)
# Events ending differently (some malformed, say), one UPDATE by key.
_MARK_EACH = (
    f'UPDATE "{WebhookEvent._meta.db_table}" AS e SET "status" = u.status,'  # noqa: S608
    ' "error" = u.error, "items" = u.items, "tenant_id" = u.tenant_id,'
    ' "processed_at" = %s'
    " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::integer[],"
    " %s::bigint[]) AS u(id, status, error, items, tenant_id)"
    ' WHERE e."id" = u.id'
)
