"""Recording many inbound items of one tenant at once: the set-based twin of
`helpdesk.services.inbound.record_inbound_message`.

The rows, counters, SLA clocks, rollups and events equal what recording the same
items one at a time, in the same order, would leave (the property test in
tests/social/test_batch_ingest.py compares both). The work that is the same for
every item is done once per batch: one query for the replays, two for the authors'
identities and their contacts, one locking the candidate conversations, one
multi-row INSERT each for new contacts, identities, conversations, messages and
events, one UPDATE each for the changed conversations and
identities, one upsert per rollup cell, and one allocation of event sequence
numbers. The per-item logic itself (counters, status,
sentiment, priority, the SLA clock, routing, the away reply) is the one-at-a-time
path's own code, run on the rows in memory.

What is not set-based: a conversation's first SLA clock reads the brand's policy
and holidays and records the `opened` care fact (as one at a time does); routing
writes an assignment when agents are online; an away reply is queued by
`queue_away_reply`. Items are *deferred* (left to the caller to record one at a
time, after this batch, in the same transaction) when they follow an away reply
candidate from the same author in this batch, so that reply's events keep their
place in the conversation's order.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model, Q
from django.utils import timezone

from helpdesk import events, metrics
from helpdesk.models import Contact, Conversation, Identity, Message
from helpdesk.presence import presence_store
from helpdesk.publish import enqueue_task_on_commit
from helpdesk.services import rollups, sla, writebatch
from helpdesk.services.assignment import route_inbound
from helpdesk.services.away import (
    AWAY_REPLY_MAX_AGE,
    NO_AWAY_REPLY_ORIGINS,
    away_reply_due,
    queue_due_away_reply,
)
from helpdesk.services.bulkrows import (
    any_of,
    build_row,
    by_keys,
    insert_rows,
    routes_plainly,
    update_rows,
)
from helpdesk.services.contacts import refresh_identity
from helpdesk.services.inbound import (
    InboundResult,
    _apply_customer_message,
    incident_rules_open,
    message_row,
    origin_of,
)
from social.connectors.base import InboundItem
from social.models import SocialAccount
from tenants.hours import availability
from tenants.models import Tenant

Status = Conversation.Status
# A message's row: the one-item path's, without its count (a batch counts its
# items per platform); a name of this module, which the poisoned-item tests replace.
customer_message = message_row
AuthorKey = tuple[str, str]  # (platform, author external id)


@dataclass(frozen=True)
class BatchOutcome:
    """`results[i]` for the i-th entry (None when deferred); `deferred` lists the
    entries the caller records one at a time, in this order, after the batch."""

    results: list[InboundResult | None]
    deferred: list[int]


@dataclass
class _Shadow:
    """The fields that decide which conversation an item joins, as they will be
    after the items mapped so far (`_find` reads them; the rows change later)."""

    conversation: Conversation
    awaiting_private: bool
    private_thread_ref: str
    channel_state: str
    status: str
    last_activity_at: datetime
    customer_message_count: int

    @classmethod
    def of(cls, conversation: Conversation) -> "_Shadow":
        return cls(
            conversation,
            conversation.awaiting_private,
            conversation.private_thread_ref,
            conversation.channel_state,
            conversation.status,
            conversation.last_activity_at,
            conversation.customer_message_count,
        )

    def add(self, item: InboundItem) -> None:
        # Mirrors the fields _apply_customer_message sets that _find reads.
        self.customer_message_count += 1
        self.last_activity_at = max(self.last_activity_at, item.created_at)
        if item.visibility == "private":
            self.channel_state = Conversation.ChannelState.PRIVATE
            self.awaiting_private = False
            if not self.private_thread_ref:
                self.private_thread_ref = item.thread_ref or item.external_id
        if self.status in (Status.RESOLVED, Status.SNOOZED, Status.PENDING):
            self.status = Status.OPEN


@dataclass
class _Applied:
    """What applying a batch's items left to write: the changed conversations
    and identities (with their fields), the rollup cells, the away candidates."""

    dirty: dict[int, tuple[Conversation, set[str]]] = field(default_factory=dict)
    identity_fields: dict[int, tuple[Identity, set[str]]] = field(default_factory=dict)
    cells: Counter[tuple[tuple[str, Any], ...]] = field(default_factory=Counter)
    away: list["_Slot"] = field(default_factory=list)


@dataclass
class _Slot:
    account: SocialAccount
    item: InboundItem
    shadow: _Shadow
    opened: bool
    identity: Identity | None = None
    message: Message | None = None
    changed: dict[str, object] = field(default_factory=dict)


def record_inbound_batch(
    tenant: Tenant,
    entries: Sequence[tuple[SocialAccount, InboundItem]],
    *,
    away_reply: bool = True,
    last: "Last | None" = None,
) -> BatchOutcome:
    """Record `entries` (accounts of `tenant`, items in arrival order) together.

    Call inside the tenant's context; runs in one savepoint (but see `last`).
    Equal in effect to `record_inbound_message(account, item)` for each entry
    in order, for the entries not deferred: replays and repeats are no-ops,
    identities, contacts and conversations are found or created, counters, SLA
    clocks, rollups and routing are kept, and message.created plus
    conversation.created/updated are stored for every item and sent after
    commit, in sequence order. An IntegrityError (a
    concurrent worker recorded one of the same items or authors) rolls the whole
    batch back: the caller records the entries one at a time then.

    `last` (PostgreSQL): the caller writes nothing after the batch but what
    `last` adds to the batch's statement. Then there is no savepoint (an error
    leaves the caller's transaction to be rolled back whole), and when nothing
    of the batch follows its statement (no entry deferred, no away reply due),
    `last` is called just before it runs, with the conversations the batch
    opens and its write batch: it may run statements of its own and add some to
    the batch, and when it returns True the statement is the transaction's last
    write (it goes with COMMIT inside tenants.last_write.commit_with_last_write,
    releasing the tenant's counter row at once).
    """
    with transaction.atomic(savepoint=last is None):
        return _Batch(tenant, list(entries), away_reply=away_reply, last=last).run()


# What a caller whose batch may be its transaction's last write passes (above).
Last = Callable[[list[Conversation], writebatch.WriteBatch], bool]


class _Batch:
    def __init__(
        self,
        tenant: Tenant,
        entries: list[tuple[SocialAccount, InboundItem]],
        *,
        away_reply: bool,
        last: Last | None = None,
    ) -> None:
        self.tenant = tenant
        self.last = last
        self.entries = entries
        self.away_reply = away_reply and settings.AWAY_REPLIES_ENABLED
        self.results: list[InboundResult | None] = [None] * len(entries)
        self.deferred: list[int] = []
        self.slots: list[_Slot] = []
        self.identities: dict[AuthorKey, Identity] = {}
        self.new_authors: dict[AuthorKey, InboundItem] = {}
        self.candidates: dict[tuple[int, object], list[_Shadow]] = {}
        self.new_conversations: list[Conversation] = []
        self.slot_index: list[int] = []  # the entry index of each slot

    def run(self) -> BatchOutcome:
        fresh, repeats = self._replays()
        if fresh:
            self._load_identities([self.entries[i][1] for i in fresh])
            self._load_conversations([self.entries[i] for i in fresh])
            self._map(fresh)
        if self.slots:
            self._create_authors()
            self._create_conversations()
            self._apply()
        for index, first in repeats:
            earlier = self.results[first]
            if earlier is not None:
                self.results[index] = InboundResult(
                    earlier.message, earlier.conversation, created=False
                )
            elif first in self.deferred:
                self.deferred.append(index)
        self.deferred.sort()
        return BatchOutcome(self.results, self.deferred)

    # --- reading --------------------------------------------------------------

    def _replays(self) -> tuple[list[int], list[tuple[int, int]]]:
        """Entries that are new, and (index, first index) of in-batch repeats;
        results for items recorded before."""
        keys = sorted({(item.platform, item.external_id) for _a, item in self.entries})
        if connection.vendor == "postgresql":
            # Each key through the (tenant, platform, external_id) unique index.
            found = by_keys(
                Message,
                ["platform", "external_id"],
                keys,
                where='r."external_id" IS NOT NULL',
                related="conversation",
            )
        else:
            found = list(
                Message.objects.select_related("conversation").filter(
                    _any_key(Message, "external_id", keys)
                )
            )
        recorded = {
            (message.platform, message.external_id): message for message in found
        }
        fresh: list[int] = []
        repeats: list[tuple[int, int]] = []
        first_of: dict[tuple[str, str], int] = {}
        for index, (_account, item) in enumerate(self.entries):
            key = (item.platform, item.external_id)
            duplicate = recorded.get(key)
            if duplicate is not None:
                self.results[index] = InboundResult(
                    duplicate, duplicate.conversation, created=False
                )
            elif key in first_of:
                repeats.append((index, first_of[key]))
            else:
                first_of[key] = index
                fresh.append(index)
        return fresh, repeats

    def _load_identities(self, items: list[InboundItem]) -> None:
        keys = sorted({(item.platform, item.author.external_id) for item in items})
        postgresql = connection.vendor == "postgresql"
        # Two statements rather than one join: on tables never analyzed the join
        # looped over every contact of the tenant once per identity. On
        # PostgreSQL each key is looked up through its unique index.
        identities = (
            by_keys(Identity, ["platform", "external_id"], keys)
            if postgresql
            else list(Identity.objects.filter(_any_key(Identity, "external_id", keys)))
        )
        if not identities:
            return
        ids = sorted({i.contact_id for i in identities})
        contacts = {
            contact.pk: contact
            for contact in (
                by_keys(Contact, ["id"], [(pk,) for pk in ids])
                if postgresql
                else Contact.objects.filter(any_of(Contact, "id", ids)).order_by()
            )
        }
        for identity in identities:
            identity.contact = contacts[identity.contact_id]
            self.identities[(identity.platform, identity.external_id)] = identity

    def _load_conversations(
        self, entries: list[tuple[SocialAccount, InboundItem]]
    ) -> None:
        """Lock every conversation an item may join, in one order two batches
        share (by account and contact, then id): of the items' authors on their
        accounts, those `_find` can pick (a public item's thread; for a private
        item, one awaiting private, of its private thread or private and not
        resolved). A conversation no item can join is neither read nor locked."""
        contacts = {identity.contact_id for identity in self.identities.values()}
        if not contacts:
            return
        public = {
            item.thread_ref or item.external_id
            for _account, item in entries
            if item.visibility != "private"
        }
        private = {
            item.thread_ref or item.external_id
            for _account, item in entries
            if item.visibility == "private"
        }
        accounts = sorted({account.pk for account, _item in entries})
        if connection.vendor == "postgresql":
            rows: Iterable[Conversation] = _lock_candidates(
                accounts, sorted(contacts), public, private
            )
        else:
            rows = _candidates_query(accounts, contacts, public, private)
        for conversation in rows:
            key = (conversation.social_account_id or 0, conversation.contact_id)
            self.candidates.setdefault(key, []).append(_Shadow.of(conversation))

    # --- deciding -----------------------------------------------------------

    def _map(self, fresh: list[int]) -> None:
        """Decide, in order, which conversation each item joins or opens."""
        deferred_authors: set[AuthorKey] = set()
        now = timezone.now()
        for index in fresh:
            account, item = self.entries[index]
            author: AuthorKey = (item.platform, item.author.external_id)
            if author in deferred_authors:
                self.deferred.append(index)
                continue
            identity = self.identities.get(author)
            if identity is None:
                self.new_authors.setdefault(author, item)
            contact: object = identity.contact_id if identity else author
            mine = self.candidates.setdefault((account.pk, contact), [])
            shadow = _find(mine, item)
            opened = shadow is None
            if shadow is None:
                shadow = _Shadow.of(_opened(self.tenant, account, item))
                mine.append(shadow)
                self.new_conversations.append(shadow.conversation)
            shadow.add(item)
            self.slots.append(_Slot(account, item, shadow, opened))
            self.slot_index.append(index)
            if self._away_possible(account, shadow, item, now):
                # Its away reply takes sequence numbers after this batch's: the
                # author's later items follow it one at a time.
                deferred_authors.add(author)

    def _away_possible(
        self, account: SocialAccount, shadow: _Shadow, item: InboundItem, now: datetime
    ) -> bool:
        """The necessary conditions of queue_away_reply (it decides for itself)."""
        if not self.away_reply or shadow.customer_message_count != 1:
            return False
        if shadow.conversation.origin in NO_AWAY_REPLY_ORIGINS:
            return False
        if now - item.created_at > AWAY_REPLY_MAX_AGE:
            return False
        state = availability(account.brand, item.created_at)
        return not state.online and state.next_change is not None

    # --- writing --------------------------------------------------------------

    def _create_authors(self) -> None:
        needed = {
            (slot.item.platform, slot.item.author.external_id) for slot in self.slots
        }
        new = [(key, item) for key, item in self.new_authors.items() if key in needed]
        if not new:
            return
        contacts = insert_rows(
            [
                build_row(
                    Contact,
                    tenant=self.tenant,
                    display_name=item.author.display_name or item.author.handle,
                )
                for _key, item in new
            ]
        )
        identities = insert_rows(
            [
                build_row(
                    Identity,
                    tenant=self.tenant,
                    contact=contact,
                    platform=platform,
                    external_id=item.author.external_id,
                    handle=item.author.handle,
                    display_name=item.author.display_name,
                    followers=item.author.followers,
                    profile_url=item.author.profile_url,
                )
                for ((platform, _ext), item), contact in zip(new, contacts, strict=True)
            ]
        )
        for (key, _item), identity in zip(new, identities, strict=True):
            self.identities[key] = identity

    def _create_conversations(self) -> None:
        for slot in self.slots:
            author = (slot.item.platform, slot.item.author.external_id)
            slot.identity = self.identities[author]
        for conversation in self.new_conversations:
            # Set before the INSERT: the opener's identity gives the contact.
            opener = next(
                s for s in self.slots if s.shadow.conversation is conversation
            )
            assert opener.identity is not None  # noqa: S101 - set just above
            conversation.contact = opener.identity.contact
        if self.new_conversations:
            insert_rows(self.new_conversations)

    def _apply(self) -> None:
        tenant_id = self.tenant.pk
        online = bool(presence_store().online(tenant_id))
        postgresql = connection.vendor == "postgresql"
        # Care facts and rollup counters join one trailing statement, unless
        # routing runs: it reads the agents' load from the rows as written.
        with nullcontext() if online else writebatch.write_batch():
            applied = self._apply_all(online)
            # Written after the batch's statement; known (nothing written) before.
            away = self._away_due(applied.away)
            # After routing: the rest joins that statement (PostgreSQL), the
            # event sequences with it (the outer batch when there is one).
            with writebatch.write_batch() if postgresql else nullcontext():
                messages = self._store(applied)
                batch = writebatch.current()
                if (
                    self.last is not None
                    and batch is not None
                    and not self.deferred
                    and not away
                ):
                    # Nothing of the batch follows its statement: the caller's
                    # last lookups and writes go before it or into it.
                    batch.last_write = self.last(self.new_conversations, batch)
        self._finish(messages, away)

    def _apply_all(self, online: bool) -> "_Applied":
        """Each slot's item applied to its rows in memory (routing writes)."""
        applied = _Applied()
        for platform, count in Counter(s.item.platform for s in self.slots).items():
            metrics.count_ingested(platform, count)
        for slot in self.slots:
            self._apply_one(slot, online, applied.dirty, applied.identity_fields)
            conversation = slot.shadow.conversation
            dims = rollups.conversation_dimensions(
                conversation, slot.item.created_at, agent_id=None
            )
            applied.cells[tuple(dims.items())] += 1
            if self.away_reply and conversation.customer_message_count == 1:
                applied.away.append(slot)
        return applied

    def _store(self, applied: "_Applied") -> list[Message]:
        """Write the batch's rows and events; returns its messages.

        The tenant's counter row stays locked from the allocation to COMMIT.
        On PostgreSQL the allocation is part of the active write batch's one
        statement, with each message's `seq`, the identities' refreshes and
        the Event rows; the messages (seq 0) and the conversations (locked
        since the batch read them) are written before it. Nothing of the batch
        runs after it, and the locks it takes with the counter (identities,
        rollup cells) come after the counter, as in the one-at-a-time path's
        last statement. Elsewhere the allocation comes first, as it did.
        """
        tenant_id = self.tenant.pk
        count = 2 * len(self.slots)
        messages = []
        for slot in self.slots:
            assert slot.message is not None  # noqa: S101 - set by _apply_one
            messages.append(slot.message)
        batch = writebatch.current()
        first_seq: int | writebatch.Sequences
        if batch is not None and connection.vendor == "postgresql":
            insert_rows(messages)
            self._save_rows(applied.dirty, {})
            first_seq = batch.sequences(tenant_id, count)
            _number_messages(batch, first_seq, messages)
            for identity, fields in applied.identity_fields.values():
                batch.update(identity, sorted(fields))
        else:
            first_seq = events.next_seq(tenant_id, count=count) - count + 1
            for number, message in enumerate(messages):
                message.seq = first_seq + 2 * number
            insert_rows(messages)
            self._save_rows(applied.dirty, applied.identity_fields)
        for dims_items, inbound in applied.cells.items():
            rollups.upsert_rollup(dict(dims_items), {"inbound": inbound})
        events.emit_many(
            tenant_id,
            [spec for slot in self.slots for spec in _event_specs(slot)],
            first_seq=first_seq,
            known=[*messages, *(c for c, _fields in applied.dirty.values())],
        )
        return messages

    def _away_due(self, slots: list[_Slot]) -> list[tuple[_Slot, str]]:
        """The away replies due to the slots' items (away_reply_due, which
        writes nothing), with their texts."""
        due = []
        for slot in slots:
            assert slot.identity is not None  # noqa: S101
            text = away_reply_due(
                slot.shadow.conversation, item=slot.item, author=slot.identity
            )
            if text is not None:
                due.append((slot, text))
        return due

    def _finish(self, messages: list[Message], away: list[tuple[_Slot, str]]) -> None:
        """The results, the incident link and the away replies, once the
        batch's statement ran."""
        tenant_id = self.tenant.pk
        for number, slot in enumerate(self.slots):
            self.results[self.slot_index[number]] = InboundResult(
                messages[number],
                slot.shadow.conversation,
                created=True,
                opened=slot.opened,
            )
        opened = [c.pk for c in self.new_conversations]
        if opened and incident_rules_open(tenant_id):  # R13, one task per batch
            enqueue_task_on_commit(
                "incidents.link_new_conversations",
                tenant_id,
                opened,
                swept_by="incidents.sweep_updates",
            )
        # After the batch's events, as one at a time sends it after its item's
        # (the author's later items were deferred past it).
        for slot, text in away:
            queue_due_away_reply(slot.shadow.conversation, item=slot.item, text=text)

    def _apply_one(
        self,
        slot: _Slot,
        online: bool,
        dirty: dict[int, tuple[Conversation, set[str]]],
        identity_fields: dict[int, tuple[Identity, set[str]]],
    ) -> None:
        account, item, identity = slot.account, slot.item, slot.identity
        assert identity is not None  # noqa: S101 - set by _create_conversations
        changed_identity = refresh_identity(identity, item.author)
        if changed_identity:
            identity_fields.setdefault(identity.pk, (identity, set()))[1].update(
                changed_identity
            )
        conversation = slot.shadow.conversation
        _relate(conversation, "brand", account.brand)
        _relate(conversation, "social_account", account)
        slot.message = customer_message(
            self.tenant, conversation, account, identity, item
        )
        fields = dirty.setdefault(conversation.pk, (conversation, set()))[1]
        with _saves_recorded(conversation, fields):
            slot.changed = _apply_customer_message(
                conversation, account.brand, identity, item, opened=slot.opened
            )
        if online:
            slot.changed.update(_route(conversation, fields, opened=slot.opened))

    def _save_rows(
        self,
        dirty: dict[int, tuple[Conversation, set[str]]],
        identity_fields: dict[int, tuple[Identity, set[str]]],
    ) -> None:
        conversation_fields = sorted(set().union(*(f for _c, f in dirty.values())))
        if conversation_fields:
            update_rows(
                [conversation for conversation, _f in dirty.values()],
                conversation_fields,
            )
        changed = sorted(set().union(*(f for _i, f in identity_fields.values())))
        if changed:
            update_rows(
                [identity for identity, _f in identity_fields.values()], changed
            )


def _number_messages(
    batch: writebatch.WriteBatch,
    sequences: writebatch.Sequences,
    messages: list[Message],
) -> None:
    """Set the n-th message's `seq` to the batch's sequence 2n (its
    message.created event's) in the batch's statement, and on the instances
    once it ran."""
    # The n-th id (from 1) of the array takes sequence 2n - 2 of the batch.
    seq = sequences.at_ordinal("(2 * u.n - 1)")
    batch.add(
        f'UPDATE {_MESSAGES} AS m SET "seq" = {seq.sql}'  # noqa: S608 - constant
        " FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(id, n)"
        ' WHERE m."id" = u.id AND m."tenant_id" = %s',
        [*seq.params, [message.pk for message in messages], messages[0].tenant_id],
    )

    def numbered(first: int) -> None:
        for number, message in enumerate(messages):
            message.seq = first + 2 * number

    sequences.then(numbered)


_MESSAGES = f'"{Message._meta.db_table}"'


def _any_key(model: Any, name: str, keys: list[tuple[str, str]]) -> Q:
    """`model`'s (platform, `name`) pair is one of `keys` (other databases)."""
    by_platform: dict[str, set[str]] = {}
    for platform, value in keys:
        by_platform.setdefault(platform, set()).add(value)
    query = Q()
    for platform, values in by_platform.items():
        query |= Q(Q(platform=platform), any_of(model, name, values))
    return query


def _joinable(public: set[str], private: set[str]) -> tuple[str, list[Any]]:
    """SQL (on `r`) for the conversations `_find` can pick for these threads."""
    sql = 'r."public_thread_ref" = ANY(%s::text[])'
    params: list[Any] = [sorted(public)]
    if private:
        sql += (
            ' OR r."awaiting_private" OR r."private_thread_ref" = ANY(%s::text[])'
            ' OR (r."channel_state" = %s AND r."status" <> %s)'
        )
        params += [
            sorted(private),
            Conversation.ChannelState.PRIVATE.value,
            Status.RESOLVED.value,
        ]
    return sql, params


def _lock_candidates(
    accounts: list[int], contacts: list[int], public: set[str], private: set[str]
) -> list[Conversation]:
    """Lock and read the joinable conversations of each (account, contact) pair
    through the (tenant, account, contact) index, pair by pair in sorted order and
    by id within a pair, so two batches lock shared rows in the same order."""
    where, params = _joinable(public, private)
    return by_keys(
        Conversation,
        ["social_account", "contact"],
        [(account, contact) for account in accounts for contact in contacts],
        where=where,
        params=params,
        lock=True,
    )


def _candidates_query(
    accounts: list[int], contacts: set[int], public: set[str], private: set[str]
) -> Iterable[Conversation]:
    """`_lock_candidates` with the ORM, in id order (other databases)."""
    joinable = Q(any_of(Conversation, "public_thread_ref", public))
    if private:
        joinable |= (
            Q(awaiting_private=True)
            | Q(any_of(Conversation, "private_thread_ref", private))
            | (
                Q(channel_state=Conversation.ChannelState.PRIVATE)
                & ~Q(status=Status.RESOLVED)
            )
        )
    return (
        Conversation.objects.select_for_update(of=("self",))
        .filter(
            joinable,
            any_of(Conversation, "social_account_id", accounts),
            any_of(Conversation, "contact_id", contacts),
        )
        .order_by("id")
    )


def _find(mine: list[_Shadow], item: InboundItem) -> _Shadow | None:
    """The conversation `item` joins among its author's on the account (the rules
    of inbound._find_or_open, over the shadows)."""

    def latest(shadows: Iterator[_Shadow]) -> _Shadow | None:
        return max(shadows, key=lambda s: s.last_activity_at, default=None)

    ref = item.thread_ref or item.external_id
    if item.visibility == "private":
        return (
            latest(s for s in mine if s.awaiting_private)
            or latest(s for s in mine if s.private_thread_ref == ref)
            or latest(
                s
                for s in mine
                if s.channel_state == Conversation.ChannelState.PRIVATE
                and s.status != Status.RESOLVED
            )
        )
    return latest(s for s in mine if s.conversation.public_thread_ref == ref)


def _opened(tenant: Tenant, account: SocialAccount, item: InboundItem) -> Conversation:
    """A new conversation as inbound._find_or_open creates it (not saved yet)."""
    private = item.visibility == "private"
    ref = item.thread_ref or item.external_id
    return build_row(
        Conversation,
        tenant=tenant,
        brand=account.brand,
        social_account=account,
        platform=item.platform,
        origin=origin_of(item),
        public_thread_ref="" if private else ref,
        private_thread_ref=ref if private else "",
        channel_state="private" if private else "public",
        mentions_account=item.mentions_account,
        last_activity_at=item.created_at,
        created_at=item.created_at,
    )


_EVERY_CONVERSATION_FIELD = [
    f.name for f in Conversation._meta.concrete_fields if not f.primary_key
]


@contextmanager
def _saves_recorded(conversation: Conversation, fields: set[str]) -> Iterator[None]:
    """While open, `conversation.save(update_fields=...)` only notes the fields;
    the batch writes every changed conversation in one UPDATE."""
    every = _EVERY_CONVERSATION_FIELD

    def record(
        *args: Any, update_fields: Sequence[str] | None = None, **kw: Any
    ) -> None:
        fields.update(update_fields if update_fields is not None else every)

    conversation.__dict__["save"] = record
    try:
        yield
    finally:
        del conversation.__dict__["save"]


def _route(
    conversation: Conversation, fields: set[str], *, opened: bool
) -> dict[str, object]:
    """route_inbound, with the row's status written first when this batch changed
    it: the agents' load it counts is read from the database. An assignment it
    makes is saved at once (one statement), as one at a time does."""
    if "status" in fields:
        Conversation.objects.filter(pk=conversation.pk).update(
            status=conversation.status
        )
    return route_inbound(conversation, opened=opened)


def _relate(conversation: Conversation, name: str, value: Model) -> None:
    """`setattr(conversation, name, value)` for a foreign key: when the row
    holds the value's key already (both of one database, no router decides),
    the descriptor would only cache the value, so that is all this does."""
    field = _FOREIGN_KEYS[name]
    if (
        getattr(conversation, field.attname) == value.pk
        and conversation._state.db == value._state.db
        and routes_plainly()
    ):
        conversation._state.fields_cache[field.cache_name] = value
    else:
        setattr(conversation, name, value)


_FOREIGN_KEYS: dict[str, Any] = {
    name: Conversation._meta.get_field(name) for name in ("brand", "social_account")
}


def _event_specs(slot: _Slot) -> list[tuple[events.DurableType, dict[str, Any]]]:
    """The two events record_inbound_message emits for the item."""
    conversation = slot.shadow.conversation
    assert slot.message is not None  # noqa: S101
    ids = {"conversation_id": conversation.pk, "brand_id": conversation.brand_id}
    return [
        (
            "message.created",
            {
                **ids,
                "message_id": slot.message.pk,
                "changed": {"direction": "in", "visibility": slot.item.visibility},
            },
        ),
        (
            "conversation.created" if slot.opened else "conversation.updated",
            {**ids, "changed": sla.jsonable(slot.changed)},
        ),
    ]
