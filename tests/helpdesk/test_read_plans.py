"""The read path's plans on tables nobody has analyzed (autovacuum is off in CI).

A few thousand contacts, conversations and messages go into fresh tables (the
test database is created for the session and never analyzed); each request's
exact SQL, as the API sends it, is explained under the tenant's RLS context. On
such tables PostgreSQL thinks the tenant holds a row or two, and once read the
inbox page as a nested loop over every contact for each conversation (1.9 s in the
peer run). The plans must read contacts only by primary key and never scan the
messages table.
"""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from helpdesk.models import Conversation, Message
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.api_clients import base, token_client
from tests.factories import make_workspace
from tests.helpdesk.conftest import make_account
from tests.perf.benchdb import FILL_FUNCTION
from tests.perf.report import conninfo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

TABLES = ("helpdesk_contact", "helpdesk_conversation", "helpdesk_message")
TARGET = {"contacts": 3000, "conversations": 4000, "per_conversation": 4}
OTHERS = {"contacts": 400, "conversations": 800, "per_conversation": 2}


@pytest.fixture
def filled(tenant: Tenant, owner: User) -> Tenant:
    make_account(tenant)
    others = [make_workspace(f"Other {n}") for n in range(3)]
    with psycopg.connect(conninfo("migrator")) as conn:
        conn.execute(FILL_FUNCTION)
        for other in others:
            conn.execute(
                "SELECT pg_temp.bench_fill(%s, %s, %s, %s, NULL)",
                [other.pk, *OTHERS.values()],
            )
        conn.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, %s, %s)",
            [tenant.pk, *TARGET.values(), owner.pk],
        )
    return tenant


def never_analyzed() -> dict[str, Any]:
    with psycopg.connect(conninfo("migrator")) as conn:
        rows = conn.execute(
            "SELECT relname, last_analyze, last_autoanalyze "
            "FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            [list(TABLES)],
        ).fetchall()
        columns = conn.execute(
            "SELECT count(*) FROM pg_stats WHERE tablename = ANY(%s)", [list(TABLES)]
        ).fetchone()
    return {
        "tables": sorted(name for name, _, _ in rows),
        "analyzed": sorted(name for name, manual, auto in rows if manual or auto),
        "column_stats": columns[0] if columns else None,
    }


def requested(client: APIClient, url: str) -> list[str]:
    """The SQL (parameters inlined) of the statements `url` sends on care tables."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return [q["sql"] for q in captured.captured_queries if '"helpdesk_' in q["sql"]]


def plan(tenant: Tenant, sql: str) -> dict[str, Any]:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        document: Any = cursor.fetchone()[0]
    root: dict[str, Any] = document[0]["Plan"]
    return root


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def faults(root: dict[str, Any]) -> list[str]:
    """What the plan must not do: read contacts other than by id, scan messages."""
    found = []
    for node in nodes(root):
        relation = node.get("Relation Name")
        kind = node["Node Type"]
        condition = node.get("Index Cond", "") + node.get("Recheck Cond", "")
        if relation == "helpdesk_message" and kind == "Seq Scan":
            found.append("sequential scan of helpdesk_message")
        if relation == "helpdesk_contact" and "(id = " not in condition:
            found.append(f"{kind} of helpdesk_contact on {condition or 'nothing'}")
    return found


@pytest.fixture
def client(filled: Tenant, owner: User) -> APIClient:
    return token_client(filled, owner, "read")


def test_the_tables_are_fresh(filled: Tenant) -> None:
    state = never_analyzed()

    assert state["tables"] == sorted(TABLES)
    assert state["analyzed"] == []
    assert state["column_stats"] == 0
    with tenant_context(filled):
        assert Conversation.objects.count() == TARGET["conversations"]
        assert Message.objects.count() == 4 * TARGET["conversations"]


@pytest.mark.parametrize(
    "query",
    ["status=open", "status=all", "status=open&assignee=none", "status=resolved"],
)
def test_the_inbox_pages_look_contacts_up_by_id(
    client: APIClient, filled: Tenant, query: str
) -> None:
    url = f"{base(filled)}/conversations/?{query}"
    first = client.get(url).json()
    statements = requested(client, url) + requested(client, first["next"])

    assert len(statements) == 2
    for sql in statements:
        root = plan(filled, sql)
        assert faults(root) == [], sql
        assert any(
            node.get("Relation Name") == "helpdesk_contact" for node in nodes(root)
        )


def test_the_detail_and_its_thread_look_everything_up_by_key(
    client: APIClient, filled: Tenant
) -> None:
    page = client.get(f"{base(filled)}/conversations/").json()
    conversation = page["results"][0]["id"]
    url = f"{base(filled)}/conversations/{conversation}/?include=messages,notes"

    statements = requested(client, url)

    assert len(statements) == 3
    plans = [plan(filled, sql) for sql in statements]
    assert [faults(root) for root in plans] == [[], [], []]
    message_scans = [
        node
        for root in plans
        for node in nodes(root)
        if node.get("Relation Name") == "helpdesk_message"
    ]
    assert message_scans
    assert all("conversation_id = " in node["Index Cond"] for node in message_scans)


def test_the_check_catches_a_nested_loop_over_contacts(filled: Tenant) -> None:
    # The join the inbox page used to make, explained on the same fresh tables.
    sql = (
        "SELECT c.id, k.display_name FROM helpdesk_conversation c "
        "JOIN helpdesk_contact k ON k.id = c.contact_id "
        f"WHERE c.tenant_id = {filled.pk} AND k.tenant_id = {filled.pk} "
        "AND c.status = 'open'"
    )

    assert faults(plan(filled, sql)) != []
