"""The write path's exact-key lookups on small tables nobody has analyzed.

A fresh tenant's tables have no statistics (autovacuum is off in CI): PostgreSQL
estimates a table's rows from its size and its columns' declared widths, and
below a few thousand rows it thinks a tenant holds one row. Every tenant-first
index then looks as cheap as the key's own for `tenant_id = $1 AND <key>` (one
row either way) and the tie goes to whichever index the planner tries first: a
lookup by key became a walk over all of the tenant's rows through an index that
binds only `tenant_id` (PostgreSQL's own check of the message author's foreign
key removed 1,999 identities by filter at 2,000).

2,000 contacts and identities and 1,500 conversations of one tenant (and a few
of a second; the planner's estimate for the tenant stays one row, see the first
test) go into fresh tables; each lookup of an inbound item and of a batch, as
sent, and the foreign-key checks as PostgreSQL words them, is explained with
ANALYZE and BUFFERS in a transaction rolled back: every read of a care table
must go through an index that binds the key and touch a handful of pages,
before and after ANALYZE. A smaller tenant (500 conversations, 1,000 messages)
checks the replay lookups on the messages the same way.
"""

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from helpdesk.models import Conversation, Identity
from helpdesk.services.inbound import _find_or_open_pg, _lookup_pg
from social.connectors.base import Author, InboundItem
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import make_workspace
from tests.helpdesk.conftest import make_account
from tests.helpdesk.test_ingest_plans import (
    IDENTITIES,
    TABLES,
    check_lookups,
    lookups,
    nodes,
)
from tests.helpdesk.test_ingest_plans import faults as batch_faults
from tests.perf.benchdb import FILL_FUNCTION, SUPERUSER_URL
from tests.perf.report import conninfo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

TARGET = {"contacts": 2000, "conversations": 1500, "per_conversation": 2}
# Small enough that the planner thinks the tenant holds one message.
SMALL = {"contacts": 500, "conversations": 500, "per_conversation": 2}
OTHERS = {"contacts": 100, "conversations": 100, "per_conversation": 2}
# A key lookup reads an index's root and leaf and a heap page or two; the walks
# this guards against read every page of an index and of the table.
MOST_PAGES = 6
# The indexes that bind each lookup's key, by table.
KEYS = {
    "lookup": {
        "helpdesk_message": {"helpdesk_message_platform_ext_uniq"},
        "helpdesk_identity": {"helpdesk_identity_platform_ext_uniq"},
    },
    "conversation": {
        "helpdesk_conversation": {
            "helpdesk_conversation_contact_tfk_ix",
            "helpdesk_conv_thread_ix",
        }
    },
}
# The lookups of an inbound item (helpdesk.services.inbound) and their KEYS.
SHAPES = {
    "lookup, known author": "lookup",
    "lookup, new author": "lookup",
    "conversation, public": "conversation",
    "conversation, private": "conversation",
    "conversation, new author": "conversation",
}
# PostgreSQL's own check of a composite foreign key (ri_triggers.c), by the
# referenced table.
RI_CHECK = (
    'SELECT 1 FROM ONLY "public"."{table}" x WHERE "tenant_id"'
    ' OPERATOR(pg_catalog.=) $1 AND "id" OPERATOR(pg_catalog.=) $2'
    " FOR KEY SHARE OF x"
)
PLAN_MODES = ("force_generic_plan", "force_custom_plan")
RI_KEYS = {
    table: {f"{table}_pkey", f"{table}_tenant_id_uniq"}
    for table in ("helpdesk_identity", "helpdesk_conversation", "helpdesk_contact")
}


def fill(
    tenant: Tenant, owner: User, sizes: dict[str, int]
) -> tuple[Tenant, SocialAccount]:
    """`sizes` of the tenant's contacts (each with an identity), conversations
    and messages per conversation, and a few of another tenant's."""
    account = make_account(tenant)
    other = make_workspace("Other")
    with psycopg.connect(conninfo("migrator")) as conn:
        conn.execute(FILL_FUNCTION)
        conn.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, %s, NULL)",
            [other.pk, *OTHERS.values()],
        )
        conn.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, %s, %s)",
            [tenant.pk, *sizes.values(), owner.pk],
        )
        for workspace in (other, tenant):
            conn.execute(
                "SELECT set_config('app.tenant_id', %s, false)", [str(workspace.pk)]
            )
            conn.execute(IDENTITIES, [workspace.pk])
    return tenant, account


@pytest.fixture
def filled(tenant: Tenant, owner: User) -> tuple[Tenant, SocialAccount]:
    return fill(tenant, owner, TARGET)


@pytest.fixture
def small(tenant: Tenant, owner: User) -> tuple[Tenant, SocialAccount]:
    return fill(tenant, owner, SMALL)


@pytest.fixture
def analyzed(filled: tuple[Tenant, SocialAccount]) -> Iterator[None]:
    """The tables analyzed for one test; then their statistics and counters are
    dropped so that later tests in this database find them fresh."""
    with psycopg.connect(conninfo("migrator")) as conn:
        for table in TABLES:
            conn.execute(f"ANALYZE {table}")
    yield
    with superuser() as conn:
        oids = [
            conn.execute("SELECT %s::regclass::oid", [table]).fetchone()[0]  # type: ignore[index]
            for table in TABLES
        ]
        conn.execute("DELETE FROM pg_statistic WHERE starelid = ANY(%s)", [oids])
        conn.execute(
            "UPDATE pg_class SET relpages = 0, reltuples = -1, relallvisible = 0"
            " WHERE oid = ANY(%s)",
            [oids],
        )
        for oid in oids:
            conn.execute("SELECT pg_stat_reset_single_table_counters(%s)", [oid])


def superuser() -> psycopg.Connection[Any]:
    database = str(connection.settings_dict["NAME"])
    return psycopg.connect(
        psycopg.conninfo.make_conninfo(SUPERUSER_URL, dbname=database)
    )


def inbound_item(**fields: Any) -> InboundItem:
    values: dict[str, Any] = {
        "platform": "sandbox",
        "external_id": "api-new-1",
        "author": Author(external_id="nobody-yet", handle="newcomer"),
        "text": "My bag did not arrive",
        "created_at": datetime.now(UTC),
        "visibility": "private",
        "kind": "direct_message",
        "thread_ref": "dm-new-1",
    }
    return InboundItem(**{**values, **fields})


def statements(tenant: Tenant, account: SocialAccount) -> dict[str, str]:
    """The write path's lookups by name, as sent (recorded, then rolled back)."""
    with tenant_context(tenant):
        conversation = Conversation.objects.order_by("id")[10]
        identity = Identity.objects.get(contact_id=conversation.contact_id)
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account.pk
        )
    known = Author(external_id=identity.external_id, handle=identity.handle)
    public = inbound_item(
        author=known,
        visibility="public",
        kind="comment",
        thread_ref=conversation.public_thread_ref,
    )
    # An API push from a new author: a contact with no conversation yet.
    newcomer = Identity(tenant_id=tenant.pk, contact_id=identity.contact_id + 10**6)
    calls: dict[str, Callable[[], object]] = {
        "lookup, known author": lambda: _lookup_pg(tenant.pk, public),
        "lookup, new author": lambda: _lookup_pg(tenant.pk, inbound_item()),
        "conversation, public": lambda: _find_or_open_pg(
            account, identity, public, None
        ),
        "conversation, private": lambda: _find_or_open_pg(
            account, identity, dataclasses.replace(public, visibility="private"), None
        ),
        "conversation, new author": lambda: _find_or_open_pg(
            account, newcomer, inbound_item(), None
        ),
    }
    assert list(calls) == list(SHAPES)
    found: dict[str, str] = {}
    with tenant_context(tenant):
        for name, call in calls.items():
            with transaction.atomic(), CaptureQueriesContext(connection) as captured:
                call()
                transaction.set_rollback(True)
            [query] = captured.captured_queries
            found[name] = query["sql"]
    return found


def explained(tenant: Tenant, sql: str) -> dict[str, Any]:
    """The plan of `sql` run with ANALYZE and BUFFERS, rolled back; its second
    run, so that the pages counted are the lookup's own (the first run in a
    session also reads what the backend caches, such as an index's metapage)."""
    for _run in range(2):
        with tenant_context(tenant), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
                document: Any = cursor.fetchone()[0]
            transaction.set_rollback(True)
    root: dict[str, Any] = document[0]["Plan"]
    return root


def faults(root: dict[str, Any], keys: dict[str, set[str]]) -> list[str]:
    """Reads of care tables not through one of the key's indexes, or that touch
    more than a handful of pages (a walk over the tenant's rows)."""
    found = []
    for node in nodes(root):
        table = node.get("Relation Name")
        if table not in TABLES:
            continue
        index = node.get("Index Name")
        pages = node["Shared Hit Blocks"] + node["Shared Read Blocks"]
        if index not in keys.get(table, set()):
            found.append(
                f"{node['Node Type']} of {table} through {index}"
                f" on {node.get('Index Cond', 'nothing')}"
            )
        if pages > MOST_PAGES:
            found.append(f"{table}: {pages} pages read")
    return found


def check_write_path(tenant: Tenant, account: SocialAccount) -> None:
    sent = statements(tenant, account)
    found = {
        name: faults(explained(tenant, sql), KEYS[SHAPES[name]])
        for name, sql in sent.items()
    }

    assert found == {name: [] for name in SHAPES}


def ri_checks(tenant: Tenant) -> dict[str, list[str]]:
    """The faults of each foreign-key check's generic and custom plans, for a
    row of the tenant. PostgreSQL runs the check without row-level security, so
    it is explained on a superuser's connection."""
    with tenant_context(tenant):
        conversation = Conversation.objects.order_by("id")[10]
        identity = Identity.objects.get(contact_id=conversation.contact_id)
    ids = {
        "helpdesk_identity": identity.pk,
        "helpdesk_conversation": conversation.pk,
        "helpdesk_contact": conversation.contact_id,
    }
    found: dict[str, list[str]] = {}
    with superuser() as conn:
        for table, pk in ids.items():
            conn.execute(
                f"PREPARE ri_check (bigint, bigint) AS {RI_CHECK.format(table=table)}"
            )
            for mode in PLAN_MODES:
                conn.execute(f"SET plan_cache_mode = {mode}")
                row = conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
                    f" EXECUTE ri_check({int(tenant.pk)}, {int(pk)})"
                ).fetchone()
                assert row is not None
                found[f"{table}, {mode}"] = faults(row[0][0]["Plan"], RI_KEYS)
            conn.execute("DEALLOCATE ri_check")
            conn.rollback()
    return found


def test_the_planner_thinks_the_tenant_holds_one_row(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    tenant, _account = filled
    with superuser() as conn:
        stats = conn.execute(
            "SELECT count(*) FROM pg_stats WHERE tablename = ANY(%s)", [list(TABLES)]
        ).fetchone()
        estimates = {
            table: conn.execute(
                f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE tenant_id = %s",
                [tenant.pk],
            ).fetchone()[0][0]["Plan"]["Plan Rows"]  # type: ignore[index]
            for table in ("helpdesk_identity", "helpdesk_conversation")
        }

    assert stats == (0,)
    assert estimates == {"helpdesk_identity": 1, "helpdesk_conversation": 1}
    with tenant_context(tenant):
        assert Identity.objects.count() == TARGET["contacts"]
        assert Conversation.objects.count() == TARGET["conversations"]


def test_the_write_path_reads_each_key_through_its_index_on_fresh_tables(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    check_write_path(*filled)


def test_the_write_path_reads_each_key_through_its_index_after_analyze(
    filled: tuple[Tenant, SocialAccount], analyzed: None
) -> None:
    check_write_path(*filled)


def test_the_foreign_key_checks_read_the_key_on_fresh_tables(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    found = ri_checks(filled[0])

    assert found == {f"{table}, {mode}": [] for table in RI_KEYS for mode in PLAN_MODES}


def test_the_foreign_key_checks_read_the_key_after_analyze(
    filled: tuple[Tenant, SocialAccount], analyzed: None
) -> None:
    found = ri_checks(filled[0])

    assert found == {f"{table}, {mode}": [] for table in RI_KEYS for mode in PLAN_MODES}


def test_the_batch_lookups_read_each_key_through_an_index_on_fresh_tables(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    check_lookups(*filled)


def test_the_replay_lookups_read_the_key_on_a_small_tenant(
    small: tuple[Tenant, SocialAccount],
) -> None:
    tenant, account = small
    with superuser() as conn:
        row = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM helpdesk_message WHERE tenant_id = %s",
            [tenant.pk],
        ).fetchone()
    assert row is not None
    assert row[0][0]["Plan"]["Plan Rows"] == 1
    sent = statements(tenant, account)
    batch = lookups(tenant, account)

    found = {
        name: faults(explained(tenant, sent[name]), KEYS["lookup"])
        for name in ("lookup, known author", "lookup, new author")
    }
    # The messages only: below about 1,300 conversations the replay's lookup of
    # each message's conversation by id still goes through a one-page index of
    # the tenant (a root that is also its leaf costs less than the key's two
    # levels), a walk this test does not cover.
    found["batch replay"] = [
        fault
        for fault in batch_faults("replay", explained(tenant, batch["replay"]), 31)
        if "helpdesk_conversation" not in fault
    ]

    assert found == {
        "lookup, known author": [],
        "lookup, new author": [],
        "batch replay": [],
    }


def test_the_check_catches_a_walk_over_the_tenants_rows(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    # The conversation lookup by thread alone: every conversation of the tenant
    # (with the account, the thread index binds it: a walk over the account's).
    tenant, _account = filled
    sql = (
        "SELECT id FROM helpdesk_conversation"
        f" WHERE tenant_id = {tenant.pk} AND public_thread_ref = 'post-11'"
    )

    found = faults(explained(tenant, sql), KEYS["conversation"])

    assert len(found) == 2
    assert found[0].startswith("Index Scan of helpdesk_conversation through ")
    assert found[0].endswith(f"on (tenant_id = {tenant.pk})")
    assert found[1].startswith("helpdesk_conversation: ")
