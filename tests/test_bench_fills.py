"""The at-scale benchmarks' fill functions still fill today's schema.

The benchmarks in tests/perf run only under `make bench`, so a NOT NULL column
added by a migration broke their SQL fills unnoticed (the inbox and reports
benchmarks failed on `spreading_threshold`, `spike_alerts` and the engagement
columns). Here each fill runs at a tiny scale inside the test database, as the
table owner, in the test's transaction.
"""

from typing import Any

import pytest
from django.db import connections

from tests.perf import benchdb
from tests.perf.test_reports_at_scale import FILL_FUNCTION as REPORTS_FILL

pytestmark = pytest.mark.django_db(databases=["default", "migrator"])


def _new_tenant(cursor: Any, slug: str) -> int:
    cursor.execute(
        "INSERT INTO tenants_tenant (name, slug, status, status_reason, plan, "
        "created_at) VALUES (%s, %s, 'active', '', 'standard', now()) RETURNING id",
        [slug, slug],
    )
    return int(cursor.fetchone()[0])


def _counts(cursor: Any, tenant_id: int) -> dict[str, int]:
    cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
    counts = {}
    for table in ("tenants_brand", "social_socialaccount", "helpdesk_contact"):
        cursor.execute(
            f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant_id]
        )
        counts[table] = cursor.fetchone()[0]
    for table in ("helpdesk_conversation", "helpdesk_message"):
        cursor.execute(
            f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant_id]
        )
        counts[table] = cursor.fetchone()[0]
    return counts


def test_the_inbox_and_read_fill_makes_every_row_it_promises() -> None:
    with connections["migrator"].cursor() as cursor:
        cursor.execute(benchdb.FILL_FUNCTION)
        tenant_id = _new_tenant(cursor, "bench-fill-inbox")
        cursor.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, %s, NULL)", [tenant_id, 3, 7, 4]
        )
        assert _counts(cursor, tenant_id) == {
            "tenants_brand": 1,
            "social_socialaccount": 1,
            "helpdesk_contact": 3,
            "helpdesk_conversation": 7,
            "helpdesk_message": 28,
        }


def test_the_reports_fill_makes_every_row_it_promises() -> None:
    with connections["migrator"].cursor() as cursor:
        cursor.execute(REPORTS_FILL)
        tenant_id = _new_tenant(cursor, "bench-fill-reports")
        cursor.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, NULL, NULL, NULL, NULL)",
            [tenant_id, 6, 2],
        )
        counts = _counts(cursor, tenant_id)
        cursor.execute(
            "SELECT count(*) FROM helpdesk_carefact WHERE tenant_id = %s", [tenant_id]
        )
        facts = cursor.fetchone()[0]
    assert counts["tenants_brand"] == 1
    assert counts["social_socialaccount"] == 1
    assert counts["helpdesk_conversation"] == 6
    assert counts["helpdesk_message"] >= 6
    assert facts >= 1
