"""Batched ingest's lookups on tables nobody has analyzed (autovacuum is off in CI,
and a fresh tenant's rows have no statistics either).

A few thousand contacts, identities, conversations and messages of the tenant, and
of two other tenants, go into fresh tables; a batch of inbound items (replies on
known threads, private messages, new authors, a replay) is recorded and each of
its lookups is explained with ANALYZE, as sent, under the tenant's RLS context
(in a transaction rolled back). PostgreSQL thinks a tenant holds a row or two on
such tables: `= ANY` filters and joins were planned as a walk over every row of
the tenant ("Rows Removed by Filter: 1200" for the replay lookup). Each lookup
must reach its rows through an index on the key and discard no more rows than
the batch has items, before and after ANALYZE.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from helpdesk.models import Contact, Conversation, Identity, Message
from helpdesk.services.bulkrows import by_keys
from helpdesk.services.inbound_batch import record_inbound_batch
from social.connectors.base import Author, InboundItem
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import make_account
from tests.perf.benchdb import SUPERUSER_URL, fill_with_neighbours
from tests.perf.report import conninfo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

TABLES = (
    "helpdesk_contact",
    "helpdesk_identity",
    "helpdesk_conversation",
    "helpdesk_message",
)
TARGET = {"contacts": 3000, "conversations": 5000, "per_conversation": 2}
OTHERS = {"contacts": 1500, "conversations": 3000, "per_conversation": 2}
IDENTITIES = (
    "INSERT INTO helpdesk_identity (tenant_id, contact_id, platform, external_id,"
    " handle, display_name, followers, profile_url, created_at)"
    " SELECT tenant_id, id, 'sandbox', 'user-' || id, 'h' || id, '', 10, '', now()"
    " FROM helpdesk_contact WHERE tenant_id = %s"
)
# What each lookup's scan of its table must name in its index condition.
KEYS = {
    "replay": {
        "helpdesk_message": "(external_id)::text = k.k1",
        "helpdesk_conversation": "id = r.conversation_id",
    },
    "identities": {"helpdesk_identity": "(external_id)::text = k.k1"},
    "contacts": {"helpdesk_contact": "id = k.k0"},
    "conversations": {"helpdesk_conversation": "contact_id = k.k1"},
}


@pytest.fixture
def filled(tenant: Tenant, owner: User) -> tuple[Tenant, SocialAccount]:
    account = make_account(tenant)
    others = fill_with_neighbours(tenant, owner, TARGET, OTHERS, 2)
    with psycopg.connect(conninfo("migrator")) as conn:
        for workspace in [*others, tenant]:
            conn.execute(
                "SELECT set_config('app.tenant_id', %s, false)", [str(workspace.pk)]
            )
            conn.execute(IDENTITIES, [workspace.pk])
    return tenant, account


@pytest.fixture
def analyzed(filled: tuple[Tenant, SocialAccount]) -> Iterator[None]:
    """The tables analyzed for one test; then their statistics, counters and
    sizes are dropped so that later tests in this database find them fresh."""
    with psycopg.connect(conninfo("migrator")) as conn:
        for table in TABLES:
            conn.execute(f"ANALYZE {table}")
    yield
    database = str(connection.settings_dict["NAME"])
    superuser = psycopg.conninfo.make_conninfo(SUPERUSER_URL, dbname=database)
    with psycopg.connect(superuser) as conn:
        oids = [
            conn.execute("SELECT %s::regclass::oid", [table]).fetchone()[0]  # type: ignore[index]
            for table in TABLES
        ]
        conn.execute("DELETE FROM pg_statistic WHERE starelid = ANY(%s)", [oids])
        for oid in oids:
            conn.execute("SELECT pg_stat_reset_single_table_counters(%s)", [oid])


def batch(account: SocialAccount) -> list[InboundItem]:
    """Replies of 20 known authors on their threads, 5 private messages of known
    authors, 5 new authors, and a replay of a stored message."""
    with tenant_context(account.tenant_id):
        known = list(
            Conversation.objects.order_by("id").values_list(
                "id", "contact_id", "public_thread_ref"
            )[:25]
        )
        authors = dict(
            Identity.objects.filter(
                contact_id__in=[contact for _c, contact, _r in known]
            ).values_list("contact_id", "external_id")
        )
    now = timezone.now()
    items = [
        InboundItem(
            platform="sandbox",
            external_id=f"reply-{n}",
            author=Author(external_id=authors[contact], handle="h", followers=99),
            text="Still waiting for my bag",
            created_at=now - timedelta(seconds=n),
            visibility="public",
            kind="comment",
            thread_ref=thread,
            mentions_account=True,
        )
        for n, (_id, contact, thread) in enumerate(known[:20])
    ]
    items += [
        InboundItem(
            platform="sandbox",
            external_id=f"dm-{n}",
            author=Author(external_id=authors[contact]),
            text="Can you look at my booking?",
            created_at=now,
            visibility="private",
            kind="direct_message",
            thread_ref=f"dm-thread-{n}",
        )
        for n, (_id, contact, _thread) in enumerate(known[20:])
    ]
    items += [
        InboundItem(
            platform="sandbox",
            external_id=f"new-{n}",
            author=Author(external_id=f"newcomer-{n}"),
            text="Hello?",
            created_at=now,
            visibility="public",
            thread_ref=f"new-{n}",
            mentions_account=True,
        )
        for n in range(5)
    ]
    first = known[0]
    items.append(
        InboundItem(
            platform="sandbox",
            external_id=f"bm-{first[0]}-1",
            author=Author(external_id=authors[first[1]]),
            text="Message 1",
            created_at=now,
            visibility="public",
            thread_ref=first[2],
            mentions_account=True,
        )
    )
    return items


def lookups(tenant: Tenant, account: SocialAccount) -> dict[str, str]:
    """The batch's statements by name (recorded, then rolled back)."""
    items = batch(account)
    with tenant_context(tenant):
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account.pk
        )
        with transaction.atomic(), CaptureQueriesContext(connection) as captured:
            outcome = record_inbound_batch(
                tenant, [(account, item) for item in items], away_reply=False
            )
            transaction.set_rollback(True)
    assert outcome.deferred == []
    assert [r is not None and r.created for r in outcome.results] == [
        *[True] * 30,
        False,
    ]
    found: dict[str, str] = {}
    names = {
        'FROM "helpdesk_message" AS r': "replay",
        'FROM "helpdesk_identity" AS r': "identities",
        'FROM "helpdesk_contact" AS r': "contacts",
        'FROM "helpdesk_conversation" AS r': "conversations",
        'UPDATE "helpdesk_conversation"': "conversation update",
        'UPDATE "helpdesk_identity"': "identity update",
    }
    for query in captured.captured_queries:
        for marker, name in names.items():
            if marker in query["sql"]:
                assert name not in found, name
                found[name] = query["sql"]
    return found


def explained(tenant: Tenant, sql: str) -> dict[str, Any]:
    with tenant_context(tenant), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            document: Any = cursor.fetchone()[0]
        transaction.set_rollback(True)
    root: dict[str, Any] = document[0]["Plan"]
    return root


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def scans(root: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(table, node type, index condition, rows discarded in all loops) of every
    read of a care table."""
    return [
        (
            node["Relation Name"],
            node["Node Type"],
            node.get("Index Cond", ""),
            round(node.get("Rows Removed by Filter", 0) * node["Actual Loops"]),
        )
        for node in nodes(root)
        if node.get("Relation Name") in TABLES
    ]


def faults(name: str, root: dict[str, Any], size: int) -> list[str]:
    found = []
    keys = KEYS[name]
    for table, kind, condition, discarded in scans(root):
        key = keys.get(table)
        if kind != "Index Scan" or key is None or key not in condition:
            found.append(f"{kind} of {table} on {condition or 'nothing'}")
        if discarded > size:
            found.append(f"{table}: {discarded} rows removed by filter")
    if {table for table, *_rest in scans(root)} != set(keys):
        found.append(f"reads {sorted(t for t, *_r in scans(root))}")
    return found


def check_lookups(tenant: Tenant, account: SocialAccount) -> None:
    statements = lookups(tenant, account)
    size = len(batch(account))
    assert sorted(statements) == sorted(
        [*KEYS, "conversation update", "identity update"]
    )
    for name in KEYS:
        assert faults(name, explained(tenant, statements[name]), size) == [], name


def test_the_tables_are_fresh(filled: tuple[Tenant, SocialAccount]) -> None:
    tenant, _account = filled
    with psycopg.connect(conninfo("migrator")) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s)"
            " AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
            [list(TABLES)],
        ).fetchall()
        stats = conn.execute(
            "SELECT count(*) FROM pg_stats WHERE tablename = ANY(%s)", [list(TABLES)]
        ).fetchone()
    assert rows == []
    assert stats == (0,)
    with tenant_context(tenant):
        assert Conversation.objects.count() == TARGET["conversations"]
        assert Identity.objects.count() == TARGET["contacts"]
        assert Message.objects.count() == 2 * TARGET["conversations"]


def test_each_lookup_reads_its_keys_through_an_index_on_fresh_tables(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    check_lookups(*filled)


def test_each_lookup_reads_its_keys_through_an_index_after_analyze(
    filled: tuple[Tenant, SocialAccount], analyzed: None
) -> None:
    check_lookups(*filled)


def test_the_check_catches_a_walk_over_the_tenants_rows(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    # The replay lookup as the ORM wrote it before (an `= ANY` filter).
    tenant, _account = filled
    sql = (
        "SELECT m.id FROM helpdesk_message m"
        f" WHERE m.tenant_id = {tenant.pk} AND m.platform = 'sandbox'"
        " AND m.external_id = ANY('{bm-1-1,bm-2-1,new-1,new-2}'::text[])"
    )

    found = faults("replay", explained(tenant, sql), 31)

    assert found == [
        "Index Scan of helpdesk_message on ((tenant_id = "
        f"{tenant.pk}) AND ((platform)::text = 'sandbox'::text))",
        "helpdesk_message: 10000 rows removed by filter",
        "reads ['helpdesk_message']",
    ]


def test_by_keys_reads_the_rows_the_orm_reads(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    tenant, _account = filled

    def values(row: Any) -> dict[str, Any]:
        return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}

    with tenant_context(tenant):
        wanted = list(Message.objects.order_by("id")[:3])
        keys = [(m.platform, m.external_id) for m in wanted]
        found = by_keys(
            Message,
            ["platform", "external_id"],
            [*reversed(keys), ("sandbox", "nobody")],
            related="conversation",
        )
        by_pk = {
            m.pk: m
            for m in Message.objects.select_related("conversation").filter(
                pk__in=[m.pk for m in wanted]
            )
        }
        expected = [by_pk[m.pk] for m in wanted]
        with CaptureQueriesContext(connection) as captured:
            conversations = [values(m.conversation) for m in found]
        contacts = by_keys(Contact, ["id"], [(wanted[0].conversation.contact_id,)])

    assert [values(m) for m in found] == [values(m) for m in reversed(expected)]
    assert conversations == [values(m.conversation) for m in reversed(expected)]
    assert captured.captured_queries == []
    assert all(not m._state.adding and m._state.db == "default" for m in found)
    assert [c.pk for c in contacts] == [wanted[0].conversation.contact_id]
