"""The conversation's key statements keep their key as a tenant grows, on tables
nobody has analyzed, in the generic plans a backend keeps once it has run a
prepared statement a few times (helpdesk migration 0017).

A generic plan is made without the parameters' values and kept for the
connection's life: a backend that fixed it while the tenant was small keeps
walking whatever index won then. Without statistics PostgreSQL thinks a small
tenant holds one row, every index that binds the tenant ties with the key's own,
and the shallower index or, at equal depth, the newer one wins: the tenant's
one-page brand, account or assignee index (deduplicated) took the
conversation's foreign-key check, the inbound lookups and the reply's UPDATE
from about 400 conversations on (399-1,199 rows removed by filter).

The statements, as sent (the foreign-key check as PostgreSQL words it), are
prepared and their generic plans explained with ANALYZE at several sizes of one
tenant, on fresh tables: each read of the conversation must go through an index
on its key and discard at most a contact's other conversations. A later index
that takes a tie is caught the same way (it is added in the last plan test).

Each size is planned on a new backend. A backend caches an index's depth when
it first reads the index and plans with it until it reads the index again, so a
long-lived one that planned on a smaller table can still take an index whose
depth it remembers as less (on one connection the same lookup went through
three indexes in a row, each read refreshing the one it used); the indexes
cannot rule that out.

Not covered: while the whole table holds about 230-290 conversations the
contact index (tenant_id, contact_id, id) already has two levels and the unique
(tenant_id, id), 8 bytes narrower, still one; the inbound lookups then walk the
table's rows through the latter. The batched lookup locks a contact's rows in
id order, which only those two indexes give; see the migration.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg import sql as pgsql
from rest_framework.test import APIClient

from helpdesk.models import Conversation, Identity
from helpdesk.services.inbound import _find_or_open_pg
from helpdesk.services.inbound_batch import record_inbound_batch
from helpdesk.services.replies import post_reply
from social.connectors.base import Author
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, token_client
from tests.factories import make_workspace, membership_of
from tests.helpdesk.conftest import make_account
from tests.helpdesk.test_ingest_plans import IDENTITIES, TABLES, nodes
from tests.helpdesk.test_ingest_plans import batch as inbound_batch
from tests.helpdesk.test_write_path_plans import RI_CHECK, inbound_item, superuser
from tests.perf.benchdb import FILL_FUNCTION
from tests.perf.report import conninfo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

TABLE = "helpdesk_conversation"
# The tenant's conversations after each step (as many new contacts); the walks
# happened at the last two.
SIZES = (40, 450, 1000)
OTHERS = {"contacts": 100, "conversations": 100, "per_conversation": 1}
BY_ID = {"helpdesk_conversation_pkey", "helpdesk_conversation_tenant_id_uniq"}
BY_CONTACT = {"helpdesk_conversation_contact_tfk_ix", "helpdesk_conv_thread_ix"}
# The indexes each statement's read of the conversation may go through.
KEYS = {
    "foreign-key check": BY_ID,
    "reply update": BY_ID,
    "reply lock": BY_ID,
    "lookup, public": BY_CONTACT,
    "lookup, private": BY_CONTACT,
    "lookup, new author": BY_CONTACT,
    "batch lookup": BY_CONTACT,
}
# A lookup by contact also reads the contact's other conversations (a few, one
# per step here), per key; the walks read all of the tenant's.
MOST_REMOVED = len(SIZES) * 2


class Tenancy:
    """The tenant, its account and owner, grown step by step."""

    def __init__(self, tenant: Tenant, owner: User) -> None:
        self.tenant, self.owner = tenant, owner
        self.account = make_account(tenant)
        self.size = 0
        other = make_workspace("Other")
        with psycopg.connect(conninfo("migrator")) as conn:
            conn.execute(FILL_FUNCTION)
            conn.execute(
                "SELECT pg_temp.bench_fill(%s, %s, %s, %s, NULL)",
                [other.pk, *OTHERS.values()],
            )

    def grow(self, size: int) -> None:
        """The tenant's conversations up to `size`, as many new contacts; a
        message each and identities for the first step's."""
        more = size - self.size
        if not more:
            return
        with psycopg.connect(conninfo("migrator")) as conn:
            conn.execute(FILL_FUNCTION)
            conn.execute(
                "SELECT pg_temp.bench_fill(%s, %s, %s, %s, %s)",
                [self.tenant.pk, more, more, 0 if self.size else 1, self.owner.pk],
            )
            if not self.size:
                conn.execute(
                    "SELECT set_config('app.tenant_id', %s, false)",
                    [str(self.tenant.pk)],
                )
                conn.execute(IDENTITIES, [self.tenant.pk])
        self.size = size


@pytest.fixture
def tenancy(tenant: Tenant, owner: User) -> Tenancy:
    grown = Tenancy(tenant, owner)
    grown.grow(SIZES[0])
    return grown


Sent = tuple[str, list[Any]]


@contextmanager
def recording() -> Iterator[list[Sent]]:
    """The statements the block sends, with their parameters (not inlined)."""
    sent: list[Sent] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield sent


def one(sent: list[Sent], marker: str) -> Sent:
    [found] = [(sql, params) for sql, params in sent if marker in sql]
    return found


def statements(grown: Tenancy) -> dict[str, Sent]:
    """The app's statements that read a conversation by key, as sent (each in a
    transaction rolled back)."""
    tenant = grown.tenant
    with tenant_context(tenant):
        conversation = Conversation.objects.filter(status="open").order_by("id")[5]
        identity = Identity.objects.get(contact_id=conversation.contact_id)
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=grown.account.pk
        )
    known = Author(external_id=identity.external_id, handle=identity.handle)
    public = inbound_item(
        author=known,
        visibility="public",
        kind="comment",
        thread_ref=conversation.public_thread_ref,
    )
    private = inbound_item(author=known)
    newcomer = Identity(tenant_id=tenant.pk, contact_id=identity.contact_id + 10**6)
    membership = membership_of(tenant, grown.owner)
    calls: dict[str, tuple[str, Callable[[], object]]] = {
        "lookup, public": (
            "FROM (SELECT 1) one",
            lambda: _find_or_open_pg(account, identity, public, None),
        ),
        "lookup, private": (
            "FROM (SELECT 1) one",
            lambda: _find_or_open_pg(account, identity, private, None),
        ),
        "lookup, new author": (
            "FROM (SELECT 1) one",
            lambda: _find_or_open_pg(account, newcomer, inbound_item(), None),
        ),
        "batch lookup": (
            'FROM "helpdesk_conversation" AS r',
            lambda: record_inbound_batch(
                tenant,
                [(account, item) for item in inbound_batch(account)],
                away_reply=False,
            ),
        ),
        "reply update": (
            'UPDATE "helpdesk_conversation"',
            lambda: post_reply(
                conversation, membership=membership, text="We are on it, sorry!"
            ),
        ),
        # Joined to its brand (helpdesk.services.reply_lock), which proves the
        # brand key's partial predicate.
        "reply lock": (
            'FOR UPDATE OF "helpdesk_conversation"',
            lambda: post_reply(
                conversation, membership=membership, text="We are on it, sorry!"
            ),
        ),
    }
    found: dict[str, Sent] = {}
    for name, (marker, call) in calls.items():
        with tenant_context(tenant), transaction.atomic(), recording() as sent:
            call()
            transaction.set_rollback(True)
        found[name] = one(sent, marker)
    return found


def prepared(sql: str) -> str:
    """`sql` with its placeholders numbered, for PREPARE."""
    numbers = iter(range(1, 1000))
    text = re.sub(r"%s", lambda _m: f"${next(numbers)}", sql)
    return text.replace("%%", "%")


def generic_plan(conn: psycopg.Connection[Any], statement: Sent) -> dict[str, Any]:
    """The generic plan of `statement` explained with ANALYZE on `conn`, a new
    backend (in a transaction the caller rolls back). A backend caches each
    index's depth when it first reads it and plans with that until it reads the
    index again: the plan a backend makes at a size is only its own at that size
    when it has not planned on a smaller table before."""
    sql, params = statement
    args = ", ".join(pgsql.Literal(value).as_string(conn) for value in params)
    conn.execute(f"PREPARE key_plan AS {prepared(sql)}")
    conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    row = conn.execute(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE key_plan({args})"
    ).fetchone()
    assert row is not None
    root: dict[str, Any] = row[0][0]["Plan"]
    return root


def app_plan(tenant: Tenant, statement: Sent) -> dict[str, Any]:
    """As the runtime role, under the tenant's row-level security."""
    with psycopg.connect(conninfo("default")) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant.pk)])
        root = generic_plan(conn, statement)
        conn.rollback()
    return root


def check_plan(tenant: Tenant, conversation_id: int) -> dict[str, Any]:
    """PostgreSQL's check of a row's foreign key on the conversation, which
    runs without row-level security: on a superuser's connection."""
    check = RI_CHECK.format(table="helpdesk_conversation")
    with superuser() as conn:
        root = generic_plan(conn, (check, [tenant.pk, conversation_id]))
        conn.rollback()
    return root


def faults(root: dict[str, Any], keys: set[str]) -> list[str]:
    """Reads of the conversation not through one of `keys`, or that discard
    more than a contact's other conversations (a walk over the tenant's)."""
    found = []
    for node in nodes(root):
        if node.get("Relation Name") != "helpdesk_conversation":
            continue
        if node["Node Type"] == "ModifyTable":  # the UPDATE's scan is below it
            continue
        index = node.get("Index Name")
        removed = node.get("Rows Removed by Filter", 0)  # per key looked up
        if index not in keys:
            found.append(f"{node['Node Type']} through {index}")
        if removed > MOST_REMOVED:
            found.append(f"{removed} rows removed by filter")
    return found


def walks(grown: Tenancy, sent: dict[str, Sent]) -> dict[str, list[str]]:
    """The faults of each statement's generic plan at the tenant's size."""
    tenant = grown.tenant
    with tenant_context(tenant):
        conversation_id = Conversation.objects.order_by("id")[3].pk
    found = {
        "foreign-key check": faults(
            check_plan(tenant, conversation_id), KEYS["foreign-key check"]
        )
    }
    for name, statement in sent.items():
        found[name] = faults(app_plan(tenant, statement), KEYS[name])
    return found


def test_the_tables_are_fresh_and_the_tenant_looks_like_one_row(
    tenancy: Tenancy,
) -> None:
    estimates = {}
    for size in SIZES:
        tenancy.grow(size)
        with superuser() as conn:
            row = conn.execute(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM helpdesk_conversation"
                " WHERE tenant_id = %s",
                [tenancy.tenant.pk],
            ).fetchone()
            assert row is not None
            estimates[size] = row[0][0]["Plan"]["Plan Rows"]
            stats = conn.execute(
                "SELECT count(*) FROM pg_stats WHERE tablename = ANY(%s)",
                [list(TABLES)],
            ).fetchone()

    assert estimates == dict.fromkeys(SIZES, 1)
    assert stats == (0,)
    with tenant_context(tenancy.tenant):
        assert Conversation.objects.count() == SIZES[-1]


def test_each_statement_keeps_its_key_as_the_tenant_grows(tenancy: Tenancy) -> None:
    sent = statements(tenancy)
    found = {}
    for size in SIZES:
        tenancy.grow(size)
        for name, faulted in walks(tenancy, sent).items():
            found[f"{name} at {size}"] = faulted

    assert found == {f"{name} at {size}": [] for size in SIZES for name in KEYS}


@pytest.fixture
def later_index(tenant: Tenant) -> Iterator[str]:
    """A newer index of the tenant's one-page kind, (tenant_id, platform), made
    while the table is empty (an index built over rows sets the table's size
    estimate, as VACUUM would)."""
    name = "helpdesk_conv_later_test_ix"
    with psycopg.connect(conninfo("migrator"), autocommit=True) as conn:
        conn.execute(f"CREATE INDEX {name} ON {TABLE} (tenant_id, platform)")
    yield name
    with psycopg.connect(conninfo("migrator"), autocommit=True) as conn:
        conn.execute(f"DROP INDEX {name}")


def test_the_check_catches_a_later_index_that_takes_the_tie(
    later_index: str, tenancy: Tenancy
) -> None:
    sent = statements(tenancy)
    tenancy.grow(SIZES[1])

    found = walks(tenancy, sent)

    assert {name: faulted[0] for name, faulted in found.items()} == dict.fromkeys(
        KEYS, f"Index Scan through {later_index}"
    )
    removed = [int(faulted[1].split()[0]) for faulted in found.values()]
    assert min(removed) >= SIZES[1] - 2


# The inbox's filters that the partial indexes and the dropped account index
# touch: each still reads conversations through an index.
FILTERS = (
    "status=open&assignee=none",
    "status=all&assignee=none",
    "status=open&assignee=me",
    "status=open&account={account}",
    "status=all&brand={brand}",
)


@pytest.fixture
def client(tenancy: Tenancy) -> APIClient:
    return token_client(tenancy.tenant, tenancy.owner, "read")


@pytest.mark.parametrize("query", FILTERS)
def test_the_inbox_filters_read_conversations_through_an_index(
    tenancy: Tenancy, client: APIClient, query: str
) -> None:
    tenancy.grow(SIZES[-1])
    with tenant_context(tenancy.tenant):
        brand = Brand.objects.get().pk
    url = f"{base(tenancy.tenant)}/conversations/?" + query.format(
        account=tenancy.account.pk, brand=brand
    )
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    assert response.json()["results"]
    scans = []
    for query_sql in (q["sql"] for q in captured.captured_queries):
        if '"helpdesk_conversation"' not in query_sql:
            continue
        with tenant_context(tenancy.tenant), connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {query_sql}")
            plan: Any = cursor.fetchone()[0]
        scans += [
            node["Node Type"]
            for node in nodes(plan[0]["Plan"])
            if node.get("Relation Name") == "helpdesk_conversation"
        ]

    assert scans
    assert "Seq Scan" not in scans
