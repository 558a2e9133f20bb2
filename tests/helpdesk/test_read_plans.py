"""The read path's plans on tables nobody has analyzed (autovacuum is off in CI).

A few thousand contacts, conversations and messages go into fresh tables (the
test database is created for the session and never analyzed); each request's
exact SQL, as the API sends it, is explained under the tenant's RLS context. On
such tables PostgreSQL thinks the tenant holds a row or two, and once read the
inbox page as a nested loop over every contact for each conversation (1.9 s in the
peer run). The plans must read contacts only by primary key and never scan the
messages table.

The inbox filtered by brand or by assignee is also explained as a backend runs it
once the statement is prepared (helpdesk.settings: after two runs a backend keeps
a generic plan, made without the values) as well as with its values: either way
its conversations must be read as the default page reads them, a range of the
candidates, not every conversation of the brand or the agent (the generic plan
walked the brand's foreign-key index over all of a 100k-conversation tenant,
225 ms a page, and sorted all of an agent's open conversations).
"""

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from psycopg import sql as pgsql
from rest_framework.test import APIClient

from helpdesk.models import Conversation, Message
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, token_client
from tests.helpdesk.conftest import make_account
from tests.helpdesk.test_conversation_key_plans import prepared, recording
from tests.perf.benchdb import fill_with_neighbours
from tests.perf.report import conninfo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

TABLES = ("helpdesk_contact", "helpdesk_conversation", "helpdesk_message")
TARGET = {"contacts": 3000, "conversations": 4000, "per_conversation": 4}
OTHERS = {"contacts": 400, "conversations": 800, "per_conversation": 2}


@pytest.fixture
def filled(tenant: Tenant, owner: User) -> Tenant:
    make_account(tenant)
    fill_with_neighbours(tenant, owner, TARGET, OTHERS, 3)
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


# A page of 25 reads its candidates: the rows due from the first to the 26th due
# time plus the brand's window (26-51 here, with the rows the bounds pass over).
# Every conversation of the brand is 4,000, every open one of the agent 400.
CANDIDATE_ROWS = 100


def param_type(value: Any, otherwise: str = "text") -> str:
    """The type psycopg binds `value` as (its dumpers: the narrowest integer);
    `otherwise` for strings and the rest ("unknown": typed by the column)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return next(
            name
            for name, bits in (("smallint", 15), ("integer", 31), ("bigint", 63))
            if -(2**bits) <= value < 2**bits
        )
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, datetime):
        return "timestamptz"
    if isinstance(value, timedelta):
        return "interval"
    return otherwise


def plan_as_run(tenant: Tenant, statement: tuple[str, list[Any]], mode: str) -> Any:
    """`statement` prepared on a new backend as the runtime role under the tenant's
    row-level security, explained with ANALYZE in plan_cache_mode `mode`."""
    sql, params = statement
    with psycopg.connect(conninfo("default")) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant.pk)])
        conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        args = ", ".join(pgsql.Literal(value).as_string(conn) for value in params)
        types = ", ".join(param_type(value) for value in params)
        conn.execute(f"PREPARE inbox_page ({types}) AS {prepared(sql)}")
        row = conn.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE inbox_page({args})"
        ).fetchone()
        conn.rollback()
    assert row is not None
    return row[0][0]["Plan"]


def rows_read(root: dict[str, Any]) -> list[tuple[int, str]]:
    """The rows each scan of the conversations that finds the candidates read
    (kept or filtered out), with the scan. Left out: the final lookup of the
    chosen ids (`id = ANY`), which on these fresh tables reads the tenant's rows
    through a tenant index on every page, filtered or not (an array of unknown
    length looks like ten lookups to the planner; by primary key once analyzed).
    It is a problem of its own, not of the filters."""
    return [
        (
            (node["Actual Rows"] + node.get("Rows Removed by Filter", 0))
            * node["Actual Loops"],
            f"{node['Node Type']} {node.get('Index Name', '')}".strip(),
        )
        for node in nodes(root)
        if node.get("Relation Name") == "helpdesk_conversation"
        and "= ANY" not in node.get("Filter", "") + node.get("Index Cond", "")
    ]


def sent_by(client: APIClient, url: str) -> list[tuple[str, list[Any]]]:
    """The statements `url` sends on the conversations, with their parameters."""
    with recording() as sent:
        response = client.get(url)
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 25
    return [(sql, params) for sql, params in sent if '"helpdesk_conversation"' in sql]


@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
@pytest.mark.parametrize(
    "query", ["status=open&brand={brand}", "status=open&assignee=me"]
)
def test_the_filtered_inbox_reads_only_its_candidates(
    client: APIClient, filled: Tenant, query: str, mode: str
) -> None:
    with tenant_context(filled):
        brand = Brand.objects.get().pk
    url = f"{base(filled)}/conversations/?" + query.format(brand=brand)

    [statement] = sent_by(client, url)
    root = plan_as_run(filled, statement, mode)

    assert never_analyzed()["analyzed"] == []
    read = rows_read(root)
    assert read
    assert max(rows for rows, _ in read) <= CANDIDATE_ROWS, "; ".join(
        f"{rows} {scan}" for rows, scan in read
    )
