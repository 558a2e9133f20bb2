"""Recording what customers post: one inbound item becomes one message, once."""

# ruff: noqa: S608 - table and column names come from the models; values are parameters.

import functools
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from helpdesk import events, metrics
from helpdesk.cache import (
    NOT_READ,
    PresenceRead,
    read_ahead,
    read_ahead_call,
    reading_ahead,
)
from helpdesk.models import Conversation, Identity, Message
from helpdesk.presence import read_target
from helpdesk.publish import enqueue_task_on_commit
from helpdesk.sentiment import read_message
from helpdesk.services import rollups, sla, webhook_outbox, writebatch
from helpdesk.services.assignment import route_inbound
from helpdesk.services.away import (
    away_reply_due,
    queue_away_reply,
    queue_due_away_reply,
)
from helpdesk.services.bulkrows import build_row, row_loader
from helpdesk.services.contacts import _refresh, upsert_identity
from social.connectors.base import InboundItem
from social.models import SocialAccount
from tenants.models import Brand, Tenant
from tenants.resp import ScriptCall

Origin = Conversation.Origin
Status = Conversation.Status


@dataclass(frozen=True)
class InboundResult:
    message: Message
    conversation: Conversation
    created: bool  # False when the item had been recorded before (a replay)
    opened: bool = False  # True when the item opened a new conversation


@dataclass(frozen=True)
class Lookup:
    """_lookup_pg's answer for an item's keys, read with another statement (the
    API channel's push reads it with the channel's row: one statement less)."""

    platform: str
    external_id: str
    author_id: str
    duplicate: bool
    identity: Identity | None

    def fits(self, item: InboundItem) -> bool:
        return (self.platform, self.external_id, self.author_id) == (
            item.platform,
            item.external_id,
            item.author.external_id,
        )


def customer_message(
    tenant: Tenant,
    conversation: Conversation | None,
    account: SocialAccount,
    identity: Identity,
    item: InboundItem,
) -> Message:
    """The unsaved message row of one inbound item, counted in the metrics."""
    metrics.count_ingested(item.platform)
    return message_row(tenant, conversation, account, identity, item)


def message_row(
    tenant: Tenant,
    conversation: Conversation | None,
    account: SocialAccount,
    identity: Identity,
    item: InboundItem,
) -> Message:
    """The unsaved message row of one inbound item (every path writes this shape;
    batched ingest counts its items in the metrics per batch). `conversation`
    None: set by the caller once its statement has found it."""
    reading = read_message(item.text)
    return build_row(
        Message,
        tenant=tenant,
        conversation=conversation,
        account=account,
        platform=item.platform,
        direction=Message.Direction.IN,
        visibility=item.visibility,
        kind=Message.Kind.CUSTOMER,
        external_id=item.external_id,
        external_url=item.url,
        in_reply_to_external_id=item.in_reply_to,
        author_identity=identity,
        text=item.text,
        language=reading.language,
        sentiment_score=reading.score,
        angry=reading.angry,
        created_at=item.created_at,
    )


def origin_of(item: InboundItem) -> str:
    """The conversation origin an item implies when the caller does not say."""
    if item.visibility == "private":
        return Origin.DIRECT_MESSAGE
    if item.kind == "review":
        return Origin.REVIEW
    if item.mentions_account:
        return Origin.MENTION
    if item.kind == "comment":
        return Origin.COMMENT
    return Origin.LISTENING


def record_inbound_message(
    account: SocialAccount,
    item: InboundItem,
    *,
    origin: str | None = None,
    away_reply: bool = True,
    lookup: Lookup | None = None,
) -> InboundResult:
    """Record one inbound item for `account`; a replay of the same item is a no-op.

    Call inside the account's tenant context. Upserts the author's identity and
    contact, finds or opens the conversation (public: same contact, account and root
    thread; private: the conversation waiting after "move to private", else the
    contact's private conversation on that account), reopens it if resolved, keeps
    the counters, SLA clock and queue position, and routes it to an agent. Emits
    conversation.created/updated and message.created after commit. Outside the
    brand's business hours the conversation's first customer message also gets the
    automatic away reply (R8, see helpdesk.services.away.queue_away_reply), which
    emits its own message.created and is delivered on commit; `away_reply=False`
    records history without one (the demo's seeded inbox). `lookup`: the item's
    replay and author lookup, read with an earlier statement of the request
    (PostgreSQL; used only when it was read for this item's keys).
    """
    if connection.vendor == "postgresql":
        return _record_pg(account, item, origin, away_reply, lookup)
    try:
        return link_to_incidents(_record(account, item, origin, away_reply))
    except IntegrityError:
        # Another worker recorded the same item between our check and our insert;
        # everything this attempt wrote was rolled back with its savepoint.
        duplicate = _existing(item)
        if duplicate is None:
            raise
        return InboundResult(duplicate, duplicate.conversation, created=False)


# Set by incidents.services while the workspace has an open incident with a linking
# rule; a cache, not SQL, so inbound keeps its statements.
INCIDENT_RULES_KEY = "incidents.rules.t{}"


def incident_rules_open(tenant_id: int) -> bool:
    """Whether new conversations of the tenant go to incidents' linking rules (R13).

    Unknown (the cache lost or unreachable) counts as no: incidents.sweep_updates
    links the recent conversations such a gap missed and sets the flag again.
    """
    key = INCIDENT_RULES_KEY.format(tenant_id)
    try:
        ahead = read_ahead()
        value = NOT_READ if ahead is None else ahead.value(key)
        return bool(cache.get(key) if value is NOT_READ else value)
    except Exception:  # a cache outage must not stop ingest
        return False


def link_to_incidents(result: InboundResult) -> InboundResult:
    """A new conversation may belong to an open incident with a linking rule
    (R13): incidents.link_new_conversations decides after commit, so the inbound
    transaction keeps its statements."""
    conversation = result.conversation
    if result.opened and incident_rules_open(conversation.tenant_id):
        _link_new_conversation(conversation)
    return result


def _link_new_conversation(conversation: Conversation) -> None:
    enqueue_task_on_commit(
        "incidents.link_new_conversations",
        conversation.tenant_id,
        [conversation.pk],
        swept_by="incidents.sweep_updates",
    )


@transaction.atomic
def _record(
    account: SocialAccount, item: InboundItem, origin: str | None, away_reply: bool
) -> InboundResult:
    tenant: Tenant = account.tenant
    duplicate = _existing(item)
    if duplicate is not None:
        return InboundResult(duplicate, duplicate.conversation, created=False)
    identity = upsert_identity(tenant, item.platform, item.author)
    conversation, opened = _find_or_open(account, identity, item, origin)
    # The brand is the account's (already loaded): no query for it per item.
    conversation.brand = account.brand
    # Both events of this item get their sequence numbers in one statement.
    seq = events.next_seq(tenant.pk, count=2) - 1
    message = customer_message(tenant, conversation, account, identity, item)
    message.seq = seq
    message.save(force_insert=True)
    changed = _apply_customer_message(
        conversation, account.brand, identity, item, opened=opened
    )
    rollups.count_inbound(conversation, message)
    changed.update(route_inbound(conversation, opened=opened))
    events.emit(
        tenant.pk,
        "message.created",
        seq=seq,
        conversation_id=conversation.pk,
        brand_id=conversation.brand_id,
        message_id=message.pk,
        changed={"direction": "in", "visibility": item.visibility},
    )
    events.emit(
        tenant.pk,
        "conversation.created" if opened else "conversation.updated",
        seq=seq + 1,
        conversation_id=conversation.pk,
        brand_id=conversation.brand_id,
        changed=sla.jsonable(changed),
    )
    # After the conversation's event, so clients know the thread the reply joins.
    if away_reply:
        queue_away_reply(conversation, item=item, author=identity)
    return InboundResult(message, conversation, created=True, opened=opened)


def _record_pg(
    account: SocialAccount,
    item: InboundItem,
    origin: str | None,
    away_reply: bool,
    lookup: Lookup | None = None,
) -> InboundResult:
    """record_inbound_message on PostgreSQL: four statements (lookup; for a
    known author the conversation, locked, or a new id, for a new one the new
    contact and identity with the new conversation's id; the message; then one
    statement for the rest, sequences included).

    Dedupe stays exact without a savepoint: the message is the first row written
    (ON CONFLICT DO NOTHING on its unique key), so when a concurrent worker
    recorded the same item, nothing of this attempt but the author's identity
    (the same one) was written, and nothing else is worked out.

    The sequences are allocated last, in the last statement: the tenant's
    counter row stays locked from then to the commit, and every other write of
    the tenant waits for that span. That statement takes them, sets the
    message's `seq` and writes the rest (the identity's refresh, the
    conversation, its SLA clock, rollup and routing, the events), all worked
    out before. In a caller's batch (which runs later) the message is inserted
    with its sequences at once, as before.
    """
    tenant: Tenant = account.tenant
    if lookup is not None and lookup.fits(item):
        duplicate, identity = lookup.duplicate, lookup.identity
    else:
        duplicate, identity = _lookup_pg(tenant.pk, item)
    if duplicate:
        return _replay(item)
    outer = writebatch.current() is not None
    # One cursor for the item's statements (each new one costs about 15 us).
    with connection.cursor() as cursor:
        recorded = None
        counted = identity is None and not outer
        if counted:
            # A new author's contact, identity and message in one statement.
            identity, recorded = _insert_author_and_message_pg(
                account, item, origin, cursor
            )
        new_id = None
        if recorded is not None:
            conversation, message, inserted = recorded
            opened = True
        elif identity is not None and not outer:
            # A known author's conversation and message in one statement.
            conversation, opened, message, inserted = _find_and_insert_message_pg(
                account, identity, item, origin, cursor, counted=counted
            )
        else:
            if identity is None:
                identity, new_id = _insert_identity_pg(tenant.pk, item, cursor)
            if new_id is None:
                conversation, opened = _find_or_open_pg(
                    account, identity, item, origin, cursor
                )
            else:  # a new contact has no conversation yet: nothing to look for
                conversation, opened = _new_conversation(
                    account, identity, item, origin, new_id
                )
            _attach(conversation, account)
            message = customer_message(tenant, conversation, account, identity, item)
            # Without a caller's batch: the message without its sequences
            # (events=0).
            inserted = writebatch.insert_with_sequences(
                message, events=2 if outer else 0, dedupe=True, cursor=cursor
            )
    assert identity is not None  # noqa: S101 - made or found above
    if not inserted:
        return _replay(item)
    # Routing's presence, the incident-rule flag (a new conversation's) and the
    # webhook endpoints are read from Redis in one round trip, before the batch
    # (or were read with the API rate limit's, inbound_read_call).
    presence = _presence_target(tenant.pk)
    with (
        reading_ahead(_ahead_keys(tenant.pk, opened), presence=presence),
        writebatch.write_batch() as batch,
    ):
        refreshed = _refresh(identity, item.author)
        batch.update(identity, refreshed)
        changed = _apply_customer_message(
            conversation, account.brand, identity, item, opened=opened, save=False
        )
        rollups.count_inbound(conversation, message)
        changed.update(route_inbound(conversation, opened=opened))
        if opened:
            batch.insert([conversation])
        else:
            batch.update(conversation, list(changed))
        link = opened and incident_rules_open(tenant.pk)
        first_seq: int | writebatch.Sequences = message.seq
        if not outer:
            first_seq = batch.sequences(tenant.pk, 2)
            seq = first_seq.at(0)
            batch.add(
                f'UPDATE {_MESSAGES} SET "seq" = {seq.sql} WHERE {_MESSAGES}."id" = %s'
                f' AND {_MESSAGES}."tenant_id" = %s',
                [*seq.params, message.pk, tenant.pk],
            )
            first_seq.then(lambda first: setattr(message, "seq", first))
        _emit_recorded(
            tenant.pk, message, conversation, item, changed, opened, first_seq
        )
        away = (
            away_reply_due(conversation, item=item, author=identity)
            if away_reply
            else None
        )
        # Nothing is written after the batch but a due away reply (the incident
        # link is a task queued on commit): its statement may go with COMMIT
        # (tenants.last_write).
        batch.last_write = not outer and away is None
    conversation._state.adding = False
    if away is not None:
        queue_due_away_reply(conversation, item=item, text=away)
    if link:
        _link_new_conversation(conversation)
    return InboundResult(message, conversation, created=True, opened=opened)


_MESSAGES = f'"{Message._meta.db_table}"'

_BRAND = Conversation._meta.get_field("brand")
_ACCOUNT = Conversation._meta.get_field("social_account")


def _attach(conversation: Conversation, account: SocialAccount) -> None:
    """`conversation.brand = account.brand` and `conversation.social_account =
    account`: when the conversation has its database and holds those keys
    already (a new conversation of the account, or one found by it, of its
    brand), only the related rows are cached, as the descriptors would, without
    their router checks (about 10 us)."""
    brand = account.brand
    if (
        conversation._state.db is not None
        and conversation.brand_id == brand.pk
        and conversation.social_account_id == account.pk
    ):
        _BRAND.set_cached_value(conversation, brand)
        _ACCOUNT.set_cached_value(conversation, account)
        return
    conversation.brand = brand
    conversation.social_account = account


def _ahead_keys(tenant_id: int, opened: bool) -> list[str]:
    keys = [webhook_outbox.endpoints_key(tenant_id)]
    if opened:
        keys.append(INCIDENT_RULES_KEY.format(tenant_id))
    return keys


def inbound_read_call(tenant_id: int) -> ScriptCall | None:
    """The cached answers record_inbound_message reads ahead on PostgreSQL (the
    incident-rule flag's too, used for a new conversation), as a script to send
    with another before the item is recorded (the API channel push sends it with
    its rate limit's: one round trip less). The presence target it reads is
    kept for the context's next record (`_presence_target`); a caller that
    records nothing drops it (`drop_read_call`)."""
    if connection.vendor != "postgresql":
        return None
    target = read_target(tenant_id)
    _read_call_target.set((tenant_id, target))
    return read_ahead_call(_ahead_keys(tenant_id, opened=True), presence=target)


# The presence target inbound_read_call built, for the same push's reading_ahead
# (helpdesk.presence.read_target once per push, not twice). Its answers were read
# with the call (helpdesk.cache matches them by the target's Redis and key, and
# the cutoff is not used again); the target is used once.
_read_call_target: ContextVar[tuple[int, PresenceRead | None] | None] = ContextVar(
    "earshot_inbound_read_call_target", default=None
)


def drop_read_call() -> None:
    """Forget the presence target of an inbound_read_call whose push recorded
    nothing (a refused or replayed push)."""
    _read_call_target.set(None)


def _presence_target(tenant_id: int) -> PresenceRead | None:
    """read_target(tenant_id), or the one this context's inbound_read_call built
    for the tenant (used once)."""
    kept = _read_call_target.get()
    if kept is None:
        return read_target(tenant_id)
    _read_call_target.set(None)
    if kept[0] != tenant_id:
        return read_target(tenant_id)
    return kept[1]


def _emit_recorded(
    tenant_id: int,
    message: Message,
    conversation: Conversation,
    item: InboundItem,
    changed: dict[str, object],
    opened: bool,
    first_seq: "int | writebatch.Sequences",
) -> None:
    """message.created and conversation.created/updated, with the message's two
    sequences (`first_seq` and the next), stored with the active write batch."""
    batch = writebatch.current()
    assert batch is not None  # noqa: S101 - called inside write_batch()
    events.emit_many(
        tenant_id,
        [
            (
                "message.created",
                {
                    "conversation_id": conversation.pk,
                    "brand_id": conversation.brand_id,
                    "message_id": message.pk,
                    "changed": {"direction": "in", "visibility": item.visibility},
                },
            ),
            (
                "conversation.created" if opened else "conversation.updated",
                {
                    "conversation_id": conversation.pk,
                    "brand_id": conversation.brand_id,
                    "changed": sla.jsonable(changed),
                },
            ),
        ],
        first_seq=first_seq,
        known=[message, conversation],
        store=batch.insert,
    )


def _replay(item: InboundItem) -> InboundResult:
    duplicate = _existing(item)
    assert duplicate is not None  # noqa: S101 - the caller saw it (or its insert did)
    return InboundResult(duplicate, duplicate.conversation, created=False)


def _cursor(cursor: Any) -> Any:
    """The caller's cursor (left open), else a new one closed with the block."""
    return connection.cursor() if cursor is None else nullcontext(cursor)


_IDENTITY_COLUMNS = (
    "id",
    "contact_id",
    "handle",
    "display_name",
    "followers",
    "profile_url",
    "created_at",
)


# _lookup_pg's select list (whether the item was recorded before, the author's
# identity's columns) and its join, with their parameters (lookup_params).
LOOKUP_SELECT = (
    'EXISTS (SELECT 1 FROM helpdesk_message m WHERE m."tenant_id" = %s'
    " AND m.platform = %s AND m.external_id = %s), "
    + ", ".join(f"i.{name}" for name in _IDENTITY_COLUMNS)
)
LOOKUP_JOIN = (
    "LEFT JOIN helpdesk_identity i"
    " ON i.tenant_id = %s AND i.platform = %s AND i.external_id = %s"
)
_LOOKUP = f"SELECT {LOOKUP_SELECT} FROM (SELECT 1) one {LOOKUP_JOIN}"


def lookup_params(
    tenant_id: int, platform: str, external_id: str, author_id: str
) -> tuple[list[Any], list[Any]]:
    """The parameters of LOOKUP_SELECT and of LOOKUP_JOIN."""
    return [tenant_id, platform, external_id], [tenant_id, platform, author_id]


def read_lookup(
    tenant_id: int,
    platform: str,
    external_id: str,
    author_id: str,
    row: Sequence[Any],
) -> Lookup:
    """The Lookup from LOOKUP_SELECT's columns of a row."""
    identity = None
    if row[1] is not None:
        values = dict(zip(_IDENTITY_COLUMNS, row[1:], strict=True))
        identity = _identity_of(tenant_id, platform, author_id, values)
    return Lookup(platform, external_id, author_id, bool(row[0]), identity)


def _lookup_pg(tenant_id: int, item: InboundItem) -> tuple[bool, Identity | None]:
    """Whether the item was recorded before, and its author's identity (None when
    unknown): one query."""
    selected, joined = lookup_params(
        tenant_id, item.platform, item.external_id, item.author.external_id
    )
    with connection.cursor() as cursor:
        cursor.execute(_LOOKUP, [*selected, *joined])
        row = cursor.fetchone()
    assert row is not None  # noqa: S101 - one row always
    if row[1] is None:
        return bool(row[0]), None
    return bool(row[0]), _identity(
        tenant_id, item, dict(zip(_IDENTITY_COLUMNS, row[1:], strict=True))
    )


def _identity(tenant_id: int, item: InboundItem, values: dict[str, object]) -> Identity:
    return _identity_of(tenant_id, item.platform, item.author.external_id, values)


def _identity_of(
    tenant_id: int, platform: str, external_id: str, values: dict[str, object]
) -> Identity:
    """The stored identity whose columns are `values` (_IDENTITY_COLUMNS) and the
    three keys: as `Identity.from_db` makes it (bulkrows.row_loader: no defaults
    worked out, then overwritten; about 4.5 -> 1.5 us)."""
    if len(values) == len(_IDENTITY_COLUMNS):
        row = {"tenant_id": tenant_id, "platform": platform, "external_id": external_id}
        row.update(values)
        try:
            ordered = [row[name] for name in _IDENTITY_ATTNAMES]
        except KeyError:
            pass
        else:
            return _load_identity()("default", ordered)
    identity = build_row(
        Identity,
        tenant_id=tenant_id,
        platform=platform,
        external_id=external_id,
        **values,
    )
    identity._state.adding = False
    identity._state.db = "default"
    return identity


_IDENTITY_ATTNAMES = [f.attname for f in Identity._meta.concrete_fields]


@functools.cache
def _load_identity() -> Callable[[str, Sequence[Any]], Identity]:
    """Identity's whole-row loader (made on first use: it asks whether the
    model builds plainly)."""
    return row_loader(Identity, _IDENTITY_ATTNAMES)


# A new contact (c) and the author's identity (i) for it, unless the identity
# is there already; then the statement's own SELECT. Parameters: _author_params.
_NEW_AUTHOR = (
    "WITH c AS (INSERT INTO helpdesk_contact (tenant_id, display_name, email,"
    " external_crm_id, notes, created_at) VALUES (%s, %s, '', '', '', %s)"
    " RETURNING id), i AS (INSERT INTO helpdesk_identity (tenant_id,"
    " contact_id, platform, external_id, handle, display_name, followers,"
    " profile_url, created_at) SELECT %s, c.id, %s, %s, %s, %s, %s, %s, %s"
    " FROM c ON CONFLICT (tenant_id, platform, external_id) DO NOTHING"
    " RETURNING id)"
)
_NEW_CONVERSATION_ID = "nextval(pg_get_serial_sequence('helpdesk_conversation', 'id'))"


def _author_values(item: InboundItem) -> dict[str, Any]:
    """The new identity's columns besides its keys and contact."""
    author = item.author
    return {
        "handle": author.handle,
        "display_name": author.display_name,
        "followers": author.followers,
        "profile_url": author.profile_url,
        "created_at": timezone.now(),
    }


def _author_params(
    tenant_id: int, item: InboundItem, values: dict[str, Any]
) -> list[Any]:
    """_NEW_AUTHOR's parameters."""
    author = item.author
    return [
        tenant_id,
        author.display_name or author.handle,
        values["created_at"],
        tenant_id,
        item.platform,
        author.external_id,
        *values.values(),
    ]


def _insert_identity_pg(
    tenant_id: int, item: InboundItem, cursor: Any = None
) -> tuple[Identity, int | None]:
    """A new contact and identity for the author, and the id of the new contact's
    conversation (one statement: a contact made by this statement has no
    conversation to look for). When another worker created the identity
    meanwhile, that one and None (our contact goes; its contact's conversation
    is looked for as a known author's). `cursor`: the caller's (else its own)."""
    values = _author_values(item)
    with _cursor(cursor) as cursor:
        cursor.execute(
            f"{_NEW_AUTHOR} SELECT c.id, i.id, CASE WHEN i.id IS NOT NULL THEN"
            f" {_NEW_CONVERSATION_ID} END FROM c LEFT JOIN i ON true",
            _author_params(tenant_id, item, values),
        )
        row = cursor.fetchone()
        assert row is not None  # noqa: S101 - the contact's row
        contact_id, identity_id, conversation_id = row
        if identity_id is None:
            return _identity_taken(tenant_id, item, contact_id, cursor), None
    identity = _identity(
        tenant_id, item, {"id": identity_id, "contact_id": contact_id, **values}
    )
    return identity, conversation_id


def _identity_taken(
    tenant_id: int, item: InboundItem, contact_id: int, cursor: Any
) -> Identity:
    """The identity another worker created for the author meanwhile; the
    contact made for ours goes."""
    cursor.execute(
        'DELETE FROM helpdesk_contact c WHERE c."tenant_id" = %s AND c.id = %s',
        [tenant_id, contact_id],
    )
    _, identity = _lookup_pg(tenant_id, item)
    assert identity is not None  # noqa: S101 - it conflicted with this one
    return identity


# The message's conversation and author as the new-author statement takes them
# (its WITH query `v`, one row when the identity was made).
_MESSAGE_FROM_AUTHOR = {
    "conversation_id": "v.conversation_id",
    "author_identity_id": "v.identity_id",
}


def _insert_author_and_message_pg(
    account: SocialAccount, item: InboundItem, origin: str | None, cursor: Any
) -> tuple[Identity, tuple[Conversation, Message, bool] | None]:
    """_insert_identity_pg and the message's insert_with_sequences (events=0,
    dedupe) in one statement, for an author the request found unknown: the
    new contact, identity and conversation id, and the message, written only
    when the identity was made (dedupe as before: a duplicate message leaves
    the identity written and nothing else). Returns the identity and the new
    conversation (unsaved, inserted with the request's other writes), the
    message and whether it was inserted; when another worker created the
    identity meanwhile, that one and None (as _insert_identity_pg: the caller
    goes on as for a known author, and nothing of the message was written).

    The message's values are worked out before the statement, with the three
    keys it makes (identity, contact, conversation) as None; they are set in
    the instances' own values afterwards, so the rows cached on each other
    stay."""
    tenant: Tenant = account.tenant
    values = _author_values(item)
    identity = _identity(tenant.pk, item, {"id": None, "contact_id": None, **values})
    conversation, _ = _new_conversation(account, identity, item, origin, None)
    _attach(conversation, account)
    message = customer_message(tenant, conversation, account, identity, item)
    insert, message_params = writebatch.deduped_insert(
        message, source="v", written=_MESSAGE_FROM_AUTHOR
    )
    cursor.execute(
        f"{_NEW_AUTHOR}, v AS (SELECT i.id AS identity_id, {_NEW_CONVERSATION_ID}"
        f" AS conversation_id FROM i), m AS ({insert}) SELECT c.id,"
        " v.identity_id, v.conversation_id, m.id, m.seq FROM c LEFT JOIN v ON"
        " true LEFT JOIN m ON true",
        [*_author_params(tenant.pk, item, values), *message_params],
    )
    row = cursor.fetchone()
    assert row is not None  # noqa: S101 - the contact's row
    contact_id, identity_id, conversation_id, message_id, seq = row
    if identity_id is None:
        return _identity_taken(tenant.pk, item, contact_id, cursor), None
    # Straight into __dict__: the key descriptors would drop the cached rows.
    identity.__dict__.update(id=identity_id, contact_id=contact_id)
    conversation.__dict__.update(id=conversation_id, contact_id=contact_id)
    message.__dict__.update(
        conversation_id=conversation_id, author_identity_id=identity_id
    )
    if message_id is None:
        return identity, (conversation, message, False)
    writebatch.inserted(message, message_id, seq)
    return identity, (conversation, message, True)


_CONVERSATION_COLUMNS = tuple(f.column for f in Conversation._meta.concrete_fields)
_CONVERSATION_NAMES = [f.attname for f in Conversation._meta.concrete_fields]
_CONVERSATION_SELECT = ", ".join(f"c.{column}" for column in _CONVERSATION_COLUMNS)


def _find_or_open_pg(
    account: SocialAccount,
    identity: Identity,
    item: InboundItem,
    origin: str | None,
    cursor: Any = None,
) -> tuple[Conversation, bool]:
    """_find_or_open in one query: the conversation row locked, or the id of a
    new one (inserted with the request's other writes, after the message that
    refers to it; foreign keys are checked at commit).

    A plain cursor, not `Conversation.objects.raw`: the raw queryset resolved its
    columns, converters and the manager's tenant filter on every call (about
    half of this step's CPU), for a row the model has no converter for."""
    sql, params = _find_sql(account, identity, item)
    with _cursor(cursor) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None  # noqa: S101 - one row always
    return _found_or_new(account, identity, item, origin, row)


def _find_sql(
    account: SocialAccount, identity: Identity, item: InboundItem
) -> tuple[str, list[Any]]:
    """_find_or_open_pg's statement and parameters: the conversation's columns
    (locked) and `new_id`, a new conversation's id when none was found."""
    ref = item.thread_ref or item.external_id
    if item.visibility == "private":
        where = (
            "(awaiting_private OR private_thread_ref = %s OR (channel_state = %s"
            " AND status <> %s))"
        )
        order = (
            "CASE WHEN awaiting_private THEN 0 WHEN private_thread_ref = %s THEN 1"
            " ELSE 2 END, "
        )
        where_params: list[Any] = [
            ref,
            Conversation.ChannelState.PRIVATE,
            Status.RESOLVED,
        ]
        order_params: list[Any] = [ref]
    else:
        where, order = "public_thread_ref = %s", ""
        where_params, order_params = [ref], []
    sql = (
        f"SELECT {_CONVERSATION_SELECT}, CASE WHEN c.id IS NULL THEN"
        f" {_NEW_CONVERSATION_ID} END AS new_id"
        " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT * FROM helpdesk_conversation"
        ' x WHERE x."tenant_id" = %s AND social_account_id = %s AND contact_id = %s'
        f" AND {where} ORDER BY {order}last_activity_at DESC LIMIT 1 FOR UPDATE)"
        " c ON true"
    )
    params: list[Any] = [
        account.tenant_id,
        account.pk,
        identity.contact_id,
        *where_params,
        *order_params,
    ]
    return sql, params


def _found_or_new(
    account: SocialAccount,
    identity: Identity,
    item: InboundItem,
    origin: str | None,
    row: Sequence[Any],
) -> tuple[Conversation, bool]:
    """The conversation of _find_sql's row: the one found, or the new one."""
    new_id = row[len(_CONVERSATION_NAMES)]
    if new_id is None:
        found = Conversation.from_db(
            connection.alias, _CONVERSATION_NAMES, row[: len(_CONVERSATION_NAMES)]
        )
        return found, False
    return _new_conversation(account, identity, item, origin, new_id)


_MESSAGE_CONVERSATION = Message._meta.get_field("conversation")


def _find_and_insert_message_pg(
    account: SocialAccount,
    identity: Identity,
    item: InboundItem,
    origin: str | None,
    cursor: Any,
    *,
    counted: bool = False,
) -> tuple[Conversation, bool, Message, bool]:
    """_find_or_open_pg and the message's insert_with_sequences (events=0,
    dedupe) in one statement, for a known author: the conversation (found and
    locked, or a new id) and the message in it. Returns the conversation,
    whether it is new, the message and whether it was inserted (a duplicate:
    the conversation was locked, and nothing was written, as before).

    The message's values are worked out before the statement with its
    conversation unknown (None); the key and the cached row are set after.
    `counted`: the item is counted in the metrics already (a new author's
    statement found the identity made meanwhile)."""
    tenant: Tenant = account.tenant
    build = message_row if counted else customer_message
    message = build(tenant, None, account, identity, item)
    insert, message_params = writebatch.deduped_insert(
        message, source="v", written=_MESSAGE_IN_FOUND
    )
    find, find_params = _find_sql(account, identity, item)
    cursor.execute(
        f"WITH f AS ({find}), v AS (SELECT coalesce(f.id, f.new_id) AS"
        f" conversation_id FROM f), m AS ({insert}) SELECT f.*, m.id, m.seq"
        " FROM f LEFT JOIN m ON true",
        [*find_params, *message_params],
    )
    row = cursor.fetchone()
    assert row is not None  # noqa: S101 - one row always
    conversation, opened = _found_or_new(account, identity, item, origin, row)
    _attach(conversation, account)
    message.__dict__["conversation_id"] = conversation.pk
    _MESSAGE_CONVERSATION.set_cached_value(message, conversation)
    message_id, seq = row[-2:]
    if message_id is None:
        return conversation, opened, message, False
    writebatch.inserted(message, message_id, seq)
    return conversation, opened, message, True


# The message's conversation as the known-author statement takes it.
_MESSAGE_IN_FOUND = {"conversation_id": "v.conversation_id"}


def _new_conversation(
    account: SocialAccount,
    identity: Identity,
    item: InboundItem,
    origin: str | None,
    new_id: int | None,
) -> tuple[Conversation, bool]:
    """The unsaved conversation `new_id` the item opens (inserted with the
    request's other writes)."""
    private = item.visibility == "private"
    ref = item.thread_ref or item.external_id
    conversation = build_row(
        Conversation,
        pk=new_id,
        tenant=account.tenant,
        brand_id=account.brand_id,
        social_account=account,
        contact_id=identity.contact_id,
        platform=item.platform,
        origin=origin or origin_of(item),
        public_thread_ref="" if private else ref,
        private_thread_ref=ref if private else "",
        channel_state="private" if private else "public",
        mentions_account=item.mentions_account,
        last_activity_at=item.created_at,
        created_at=item.created_at,
    )
    return conversation, True


def _existing(item: InboundItem) -> Message | None:
    return (
        Message.objects.select_related("conversation")
        .filter(platform=item.platform, external_id=item.external_id)
        .first()
    )


def _find_or_open(
    account: SocialAccount, identity: Identity, item: InboundItem, origin: str | None
) -> tuple[Conversation, bool]:
    contact = identity.contact
    # The row found is locked by the same query (the new message updates it).
    mine = Conversation.objects.select_for_update(of=("self",)).filter(
        social_account=account, contact=contact
    )
    if item.visibility == "private":
        existing = (
            mine.filter(awaiting_private=True).order_by("-last_activity_at").first()
            or mine.filter(private_thread_ref=item.thread_ref or item.external_id)
            .order_by("-last_activity_at")
            .first()
            or mine.filter(channel_state=Conversation.ChannelState.PRIVATE)
            .exclude(status=Status.RESOLVED)
            .order_by("-last_activity_at")
            .first()
        )
    else:
        existing = (
            mine.filter(public_thread_ref=item.thread_ref or item.external_id)
            .order_by("-last_activity_at")
            .first()
        )
    if existing is not None:
        return existing, False
    private = item.visibility == "private"
    conversation = Conversation.objects.create(
        tenant=account.tenant,
        brand_id=account.brand_id,
        social_account=account,
        contact=contact,
        platform=item.platform,
        origin=origin or origin_of(item),
        public_thread_ref="" if private else (item.thread_ref or item.external_id),
        private_thread_ref=(item.thread_ref or item.external_id) if private else "",
        channel_state="private" if private else "public",
        mentions_account=item.mentions_account,
        last_activity_at=item.created_at,
        created_at=item.created_at,
    )
    return conversation, True


def _apply_customer_message(
    conversation: Conversation,
    brand: Brand,
    identity: Identity,
    item: InboundItem,
    *,
    opened: bool,
    save: bool = True,
) -> dict[str, object]:
    """Update counters, status, sentiment, the SLA clock and the queue position for
    a new customer message (helpdesk.services.sla.customer_message_clock)."""
    changed: dict[str, object] = {}

    def put(field: str, value: object) -> None:
        if getattr(conversation, field) != value:
            setattr(conversation, field, value)
            changed[field] = value

    put("customer_message_count", conversation.customer_message_count + 1)
    put("last_activity_at", max(conversation.last_activity_at, item.created_at))
    put("last_customer_message_at", item.created_at)
    put("preview", item.text[:280])
    if conversation.first_customer_message_at is None:
        put("first_customer_message_at", item.created_at)
    if item.visibility == "private":
        put("channel_state", Conversation.ChannelState.PRIVATE)
        put("awaiting_private", False)
        if not conversation.private_thread_ref:
            put("private_thread_ref", item.thread_ref or item.external_id)
    if item.mentions_account and not conversation.mentions_account:
        put("mentions_account", True)
    if conversation.status in (Status.RESOLVED, Status.SNOOZED, Status.PENDING):
        put("status", Status.OPEN)
        put("snoozed_until", None)
        put("resolved_at", None)
    reading = read_message(item.text)
    sentiment = reading.label
    if reading.language:
        put("language", reading.language)
    if sentiment == "negative" or conversation.customer_message_count == 1:
        put("sentiment", sentiment)
    put("priority", _priority(conversation.sentiment, identity.followers))
    changed.update(
        sla.customer_message_clock(
            conversation,
            brand=brand,
            at=item.created_at,
            followers=identity.followers,
            negative=sentiment == "negative",
            opened=opened,
        )
    )
    if save:
        conversation.save(update_fields=list(changed))
    return changed


def _priority(sentiment: str, followers: int) -> int:
    """0-3: negative sentiment and reach raise it; it orders ties, never the SLA."""
    return min(
        3, (sentiment == "negative") + (followers >= 10_000) + (followers >= 1_000_000)
    )
