"""The inbox selector at scale: 25 rows of one tenant holding 100k conversations and
1M messages, among 1,000 tenants, read as the runtime role under RLS.

The data set is built once, as the table owner with INSERT ... SELECT generate_series
(each tenant's rows under its own `app.tenant_id`, since RLS is forced), into a
separate database (`earshot_bench`) that later runs reuse. Bump DATASET to rebuild.
Budget (DESIGN.md section 6): p95 < 15 ms with a constant number of queries.
"""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from time import perf_counter
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg import sql as pgsql

from helpdesk.models import Conversation
from helpdesk.selectors import inbox_conversations
from tenants.context import tenant_context
from tenants.dbroles import RolePlan, ensure_roles_and_database
from tenants.models import Membership, Tenant
from tests.factories import make_user, make_workspace
from tests.helpdesk.conftest import make_account
from tests.helpdesk.test_conversation_key_plans import prepared
from tests.helpdesk.test_read_plans import param_type, rows_read
from tests.perf import benchdb
from tests.perf.benchdb import FILL_FUNCTION
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)

pytestmark = [pytest.mark.bench, pytest.mark.sql_audit_exempt]

BENCH_DB = "earshot_bench"
DATASET = "inbox-v3"
TENANTS = 1000
TARGET = {"contacts": 20_000, "conversations": 100_000, "per_conversation": 10}
OTHERS = {"contacts": 20, "conversations": 100, "per_conversation": 2}
OWNER_EMAIL = "owner@bench-target.example"
RUNS, WARMUP = 300, 30
PAGE = 25


def owner_conninfo() -> str:
    return benchdb.owner_conninfo(BENCH_DB)


def dataset_facts() -> dict[str, Any] | None:
    return benchdb.dataset_facts(BENCH_DB, DATASET)


def bench_database() -> AbstractContextManager[None]:
    return benchdb.bench_database(BENCH_DB)


def build_dataset() -> dict[str, Any]:
    started = perf_counter()
    default, owner = settings.DATABASES["default"], settings.DATABASES["migrator"]
    plan = RolePlan(
        superuser_url=benchdb.SUPERUSER_URL,
        database=BENCH_DB,
        owner=owner["USER"],
        app=default["USER"],
    )
    ensure_roles_and_database(plan, recreate=True)
    call_command("migrate", database="migrator", verbosity=0)
    connections["migrator"].close()
    owner_user = make_user(OWNER_EMAIL)
    target = make_workspace("Bench Target", owner=owner_user)
    make_account(target)
    with psycopg.connect(owner_conninfo()) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(FILL_FUNCTION)
        conn.execute(
            "INSERT INTO tenants_tenant (name, slug, status, status_reason, plan, "
            "created_at) SELECT 'Bench tenant ' || g, 'bench-' || g, 'active', '', "
            "'standard', now() FROM generate_series(1, %s) g",
            [TENANTS - 1],
        )
        conn.execute(
            "SELECT pg_temp.bench_fill(id, %s, %s, %s, NULL) FROM tenants_tenant "
            "WHERE id <> %s",
            [*OTHERS.values(), target.pk],
        ).fetchall()
        conn.commit()
        conn.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, %s, %s)",
            [target.pk, *TARGET.values(), owner_user.pk],
        )
        conn.commit()
    with psycopg.connect(owner_conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute(
            "CREATE TABLE bench_dataset (name text PRIMARY KEY, facts jsonb NOT NULL)"
        )
        facts = {
            "tenants": TENANTS,
            "target_tenant_id": target.pk,
            **{f"target_{key}": value for key, value in TARGET.items()},
            "target_messages": TARGET["conversations"] * TARGET["per_conversation"],
            "other_tenants_conversations": (TENANTS - 1) * OTHERS["conversations"],
            "build_seconds": round(perf_counter() - started, 1),
        }
        conn.execute(
            "INSERT INTO bench_dataset (name, facts) VALUES (%s, %s)",
            [DATASET, json.dumps(facts)],
        )
    return facts


def timed(fn: Callable[[], object], runs: int, budget: float = 15.0) -> list[float]:
    """Up to `runs` timings; after 20, stop once `budget` seconds are spent."""
    seconds: list[float] = []
    while len(seconds) < runs and (len(seconds) < 20 or sum(seconds) < budget):
        started = perf_counter()
        fn()
        seconds.append(perf_counter() - started)
    return seconds


def test_inbox_selector_at_scale(django_db_blocker: Any) -> None:
    with django_db_blocker.unblock(), bench_database():
        facts = dataset_facts()
        reused = facts is not None
        if facts is None:
            facts = build_dataset()
        else:
            # Migrations added since the build apply on top of the cached rows.
            call_command("migrate", database="migrator", verbosity=0)
            connections["migrator"].close()
        tenant = Tenant.objects.get(pk=facts["target_tenant_id"])
        with tenant_context(tenant):
            membership = Membership.objects.select_related("user", "tenant").get(
                user__email=OWNER_EMAIL
            )
            figures, queries, plan, full_plan = measure(membership)

    print_report(
        "inbox selector at scale (runtime role, RLS, Postgres)",
        machine_facts(conninfo(dbname=BENCH_DB)),
        [
            f"data set {DATASET} ({'reused' if reused else 'built now'}): "
            + ", ".join(f"{key}={value}" for key, value in facts.items()),
            f"inbox_conversations(membership)[:{PAGE}] with brand, contact and "
            f"account read per row; up to {RUNS} runs (15 s) per variant after "
            f"{WARMUP} warm-up",
            f"queries per page: {queries} (25 rows and 50 rows alike)",
            "plan of the default page (candidates of the bound only):",
            *(f"  {line}" for line in plan),
            "plan of the same page sorting every open row (before the bound):",
            *(f"  {line}" for line in full_plan),
        ],
        figures,
    )


def generic_reads(membership: Membership, **filters: Any) -> list[tuple[int, str]]:
    """Rows each scan of the conversations reads in the generic plan of the page
    (a backend keeps it once the prepared statement has run a few times; EXPLAIN
    with the values shows a custom plan: it read 25 rows where the generic plan
    walked the brand's 100k conversations)."""
    sql, params = inbox_conversations(membership, **filters)[
        :PAGE
    ].query.sql_with_params()
    types = ", ".join(param_type(value) for value in params)
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE bench_page ({types}) AS {prepared(sql)}")
        try:
            args = ", ".join(
                pgsql.Literal(value).as_string(connection.connection)
                for value in params
            )
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE bench_page({args})")
            document: Any = cursor.fetchone()[0]
        finally:
            cursor.execute("DEALLOCATE bench_page")
            cursor.execute("SET plan_cache_mode = auto")
    return rows_read(document[0]["Plan"])


def explain(sql: str, params: Any) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return [row[0] for row in cursor.fetchall()]


def measure(membership: Membership) -> tuple[list[Figure], int, list[str], list[str]]:
    """Time the selector's variants inside the open tenant context."""

    def page(size: int = PAGE, **filters: Any) -> Callable[[], object]:
        def run() -> object:
            rows = list(inbox_conversations(membership, **filters)[:size])
            return [
                (r.brand.name, r.contact.display_name, r.social_account) for r in rows
            ]

        return run

    def full_sort(size: int = PAGE, **filters: Any) -> Callable[[], object]:
        """The same page without the bound: the SQL sorts every matching row."""

        def run() -> object:
            ordered = inbox_conversations(membership, **filters)
            rows = list(QuerySet.__getitem__(ordered, slice(0, size)))
            return [
                (r.brand.name, r.contact.display_name, r.social_account) for r in rows
            ]

        return run

    now = timezone.now()
    for size in (1, PAGE, 4 * PAGE):
        ordered = inbox_conversations(membership, now=now)
        bounded = [row.pk for row in ordered[:size]]
        assert bounded == [row.pk for row in QuerySet.__getitem__(ordered, slice(size))]
        assert len(bounded) == size

    counts = set()
    for size in (PAGE, 2 * PAGE):
        with CaptureQueriesContext(connection) as captured:
            page(size)()
        counts.add(len(captured.captured_queries))
    assert len(counts) == 1, counts
    sql, params = inbox_conversations(membership)[:PAGE].query.sql_with_params()
    plan = explain(sql, params)
    unbounded = QuerySet.__getitem__(inbox_conversations(membership), slice(PAGE))
    full_plan = explain(*unbounded.query.sql_with_params())
    all_sql, all_params = inbox_conversations(membership, status=None)[
        :PAGE
    ].query.sql_with_params()
    plan += ["", "plan of the 'All' tab's page:", *explain(all_sql, all_params)]
    brand_id = Conversation.objects.values_list("brand_id", flat=True).first()
    pages: dict[str, dict[str, Any]] = {
        "queue order": {},
        "one brand": {"brand_id": brand_id},
        "mine": {"assignee_id": membership.user_id},
    }
    for label, filters in pages.items():
        reads = generic_reads(membership, **filters)
        plan += [
            "",
            f"rows read per conversation scan, generic plan of the page ({label}): "
            + ", ".join(f"{rows} {scan}" for rows, scan in reads),
        ]
        assert max(rows for rows, _ in reads) <= 4 * PAGE, reads
    variants = {
        "open, full sort (before)": full_sort(),
        "open, queue order": page(),
        "open, one brand": page(brand_id=brand_id),
        "open, unassigned": page(unassigned=True),
        "mine (assignee)": page(assignee_id=membership.user_id),
        "all statuses": page(status=None),
        "all statuses, full sort (before)": full_sort(status=None),
    }

    def database_only() -> object:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    figures: list[Figure] = []
    timed(database_only, WARMUP)
    figures.extend(
        figure
        for figure in latency_figures(
            "same SQL, database only", timed(database_only, RUNS)
        )
        if figure.name.endswith(("p50", "p95", "p99"))
    )
    for label, run in variants.items():
        timed(run, WARMUP)
        samples = timed(run, RUNS)
        target = {95: 15.0} if label == "open, queue order" else None
        figures.extend(
            figure
            for figure in latency_figures(label, samples, target)
            if figure.name.endswith(("p50", "p95", "p99"))
        )
    return figures, counts.pop(), plan, full_plan
