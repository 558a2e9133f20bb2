"""Database-layer isolation on PostgreSQL, connected as the runtime role.

reference/tenancy.md §8.1 tests 1-6 and 8, and §8.3 tests 16-17 at the ORM level.
"""

import os
import subprocess
import sys
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from tenants.base import TenantForeignKey, TenantModel
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.sql_audit import SqlAuditor, UnscopedQuery

pytestmark = pytest.mark.django_db(transaction=True)

RUNTIME_ROLE = settings.DATABASES["default"]["USER"]
OWNER_ROLE = settings.DATABASES["migrator"]["USER"]
GLOBAL_ROUTING_TABLES = {"social_channelroute", "social_webhookevent"}
# Indexes on tenant tables that may lead with another column, and why.
INDEX_EXCEPTIONS = {
    # the workspace picker lists a user's own memberships before a tenant is known
    "tenants_membership_user_ix",
    # deleting a user checks its no-reply marks by the user alone (the foreign
    # key's own check names no tenant); partial, so only the rare marks are in it
    "helpdesk_conv_no_reply_by_ix",
}


def tenant_models() -> list[type[TenantModel]]:
    return [m for m in apps.get_models() if issubclass(m, TenantModel)]


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def test_every_tenant_model_has_forced_rls() -> None:
    tables = {m._meta.db_table for m in tenant_models()}
    assert {"tenants_brand", "tenants_membership"} <= tables
    for table in sorted(tables):
        rls = fetch(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = %s",
            [table],
        )
        assert rls == [(True, True)], table
        policies = fetch(
            "SELECT qual, with_check FROM pg_policies "
            "WHERE tablename = %s AND cmd = 'ALL'",
            [table],
        )
        assert len(policies) == 1, table
        qual, with_check = policies[0]
        assert "app.tenant_id" in str(qual)
        assert "app.tenant_id" in str(with_check)
        truncate = fetch(
            "SELECT has_table_privilege(current_user, %s, 'TRUNCATE')", [table]
        )
        assert truncate == [(False,)], table
    with_tenant_column = {
        row[0]
        for row in fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE column_name = 'tenant_id' AND table_schema = 'public'"
        )
    }
    # Global routing tables: written before a tenant is known (webhook receipt) or
    # holding genuinely global keys (one platform account, one workspace).
    assert with_tenant_column - tables == GLOBAL_ROUTING_TABLES


def test_every_tenant_table_keys_start_with_tenant_id() -> None:
    for model in tenant_models():
        table = model._meta.db_table
        indexes = fetch(
            "SELECT i.relname, ix.indisprimary, "
            "  (SELECT array_agg(a.attname ORDER BY k.ord) "
            "     FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord) "
            "     JOIN pg_attribute a "
            "       ON a.attrelid = ix.indrelid AND a.attnum = k.attnum) "
            "FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid "
            "JOIN pg_class t ON t.oid = ix.indrelid WHERE t.relname = %s",
            [table],
        )
        columns_of = {name: cols for name, _primary, cols in indexes}
        assert ["tenant_id", "id"] in columns_of.values(), (
            f"{table}: UNIQUE (tenant_id, id)"
        )
        for name, primary, cols in indexes:
            if primary or name in INDEX_EXCEPTIONS:
                continue
            assert cols[0] == "tenant_id", f"{table}.{name} leads with {cols[0]}"
        for field in model._meta.concrete_fields:
            if not isinstance(field, TenantForeignKey):
                continue
            keys = fetch(
                "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_constraint c "
                "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, ord) "
                "JOIN pg_attribute a "
                "  ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
                "WHERE c.conrelid = %s::regclass AND c.contype = 'f' GROUP BY c.oid",
                [table],
            )
            assert (["tenant_id", field.column],) in keys, f"{table}.{field.name}"


def test_runtime_role_is_restricted() -> None:
    assert fetch("SELECT current_user") == [(RUNTIME_ROLE,)]
    assert fetch(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ) == [(False, False)]
    assert fetch("SELECT count(*) FROM pg_tables WHERE tableowner = current_user") == [
        (0,)
    ]
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        connection.cursor() as c,
    ):
        c.execute(f"SET ROLE {OWNER_ROLE}")


@pytest.mark.sql_audit_exempt
def test_no_context_sees_nothing(tenant: Tenant, other_tenant: Tenant) -> None:
    tables = sorted(m._meta.db_table for m in tenant_models())
    for table in tables:
        assert fetch(f'SELECT count(*) FROM "{table}"') == [(0,)], table
    with transaction.atomic():
        assert Brand.objects.unscoped().count() == 0
    with tenant_context(tenant):
        assert fetch('SELECT count(*) FROM "tenants_brand"') == [(1,)]


@pytest.mark.sql_audit_exempt
def test_raw_sql_unfiltered_returns_only_own_rows(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    with tenant_context(tenant):
        names = fetch("SELECT name FROM tenants_brand")
        memberships = fetch("SELECT tenant_id FROM tenants_membership")
    assert names == [("Acme Air",)]
    assert {row[0] for row in memberships} == {tenant.pk}


@pytest.mark.sql_audit_exempt
def test_with_check_blocks_foreign_writes(tenant: Tenant, other_tenant: Tenant) -> None:
    insert = (
        "INSERT INTO tenants_brand (tenant_id, name, slug, timezone, business_hours, "
        "public_reply_limit, send_hold_seconds, private_first_allowed, "
        "pause_while_pending, queue_window_minutes, publish_badge, sla_digest, "
        "signature_rules, created_at) "
        "VALUES (%s, 'Planted', 'planted', 'UTC', '{}', 2, 20, false, true, 5, false, "
        "false, '{}', now())"
    )
    with (
        pytest.raises(DatabaseError, match="row-level security"),
        tenant_context(tenant),
    ):
        fetch(insert + " RETURNING id", [other_tenant.pk])
    with (
        pytest.raises(DatabaseError, match="row-level security"),
        tenant_context(tenant),
    ):
        fetch("UPDATE tenants_brand SET tenant_id = %s RETURNING id", [other_tenant.pk])
    with tenant_context(other_tenant):
        assert list(Brand.objects.values_list("name", flat=True)) == ["Globex"]
    with tenant_context(tenant):
        assert list(Brand.objects.values_list("name", flat=True)) == ["Acme Air"]


@pytest.mark.sql_audit_exempt
def test_context_does_not_leak_across_transactions(tenant: Tenant) -> None:
    with tenant_context(tenant):
        assert Brand.objects.count() == 1
    # Same pooled connection, next unit of work, no context: nothing is visible.
    assert fetch("SELECT current_setting('app.tenant_id', true)") == [("",)]
    assert fetch("SELECT count(*) FROM tenants_brand") == [(0,)]
    with transaction.atomic():
        assert fetch("SELECT count(*) FROM tenants_brand") == [(0,)]


@pytest.mark.sql_audit_exempt
def test_forgotten_filter_is_contained_by_rls(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    # Code that forgets the tenant filter (unscoped manager, raw SQL) still sees
    # only the open tenant's rows, because RLS is forced for the runtime role.
    with tenant_context(tenant):
        unscoped = sorted(Brand.objects.unscoped().values_list("name", flat=True))
        raw = fetch("SELECT name FROM tenants_brand")
    assert unscoped == ["Acme Air"]
    assert raw == [("Acme Air",)]


@pytest.mark.sql_audit_exempt
def test_forgotten_filter_is_caught_by_app_layer(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    auditor = SqlAuditor()
    with connection.execute_wrapper(auditor), tenant_context(tenant):
        assert Brand.objects.count() == 1
        with pytest.raises(UnscopedQuery, match="tenants_brand"):
            list(Brand.objects.unscoped().all())
        with pytest.raises(UnscopedQuery, match="tenants_brand"):
            fetch("SELECT name FROM tenants_brand WHERE slug = 'acme-air'")
        with pytest.raises(UnscopedQuery, match="INSERT into tenants_auditevent"):
            fetch(
                "INSERT INTO tenants_auditevent (action) VALUES ('x') RETURNING id",
            )
    assert len(auditor.violations) == 3


def _run_as(user: str, *args: str) -> "subprocess.CompletedProcess[str]":
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "DATABASE_URL": f"postgresql://{user}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SECRET_KEY": "s" * 50,
        "EARSHOT_DEMO": "0",
    }
    env.pop("MIGRATOR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_system_check_refuses_a_role_that_bypasses_rls() -> None:
    owner = _run_as(OWNER_ROLE, "manage.py", "check", "--database", "default")
    assert owner.returncode == 1
    assert "(tenants.E001) Row-level security would be bypassed" in owner.stderr
    assert f"the runtime role '{OWNER_ROLE}' owns" in owner.stderr
    runtime = _run_as(RUNTIME_ROLE, "manage.py", "check", "--database", "default")
    assert runtime.returncode == 0, runtime.stderr


def test_asgi_app_refuses_to_start_as_the_owner() -> None:
    started = _run_as(OWNER_ROLE, "-c", "import helpdesk.asgi")
    assert started.returncode == 1
    assert "SystemCheckError" in started.stderr
    assert "tenants.E001" in started.stderr


# uvicorn --workers imports the app inside a running event loop.
IMPORT_IN_A_LOOP = (
    "import asyncio\n"
    "async def main():\n"
    "    import helpdesk.asgi\n"
    "    print('started')\n"
    "asyncio.run(main())\n"
)


def test_the_startup_check_also_runs_inside_an_event_loop() -> None:
    owner = _run_as(OWNER_ROLE, "-c", IMPORT_IN_A_LOOP)
    assert owner.returncode == 1
    assert "tenants.E001" in owner.stderr
    assert "SynchronousOnlyOperation" not in owner.stderr
    runtime = _run_as(RUNTIME_ROLE, "-c", IMPORT_IN_A_LOOP)
    assert runtime.returncode == 0, runtime.stderr
    assert runtime.stdout.strip() == "started"


@pytest.mark.sql_audit_exempt
def test_composite_fk_blocks_cross_tenant_reference(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    from helpdesk.models import Contact, Conversation

    with tenant_context(other_tenant):
        foreign_brand = Brand.objects.get()
    with tenant_context(tenant):
        contact = Contact.objects.create(display_name="Jo")
    # A single-column FK check would accept another tenant's brand id; the
    # composite (tenant_id, brand_id) key refuses it at commit.
    with (
        pytest.raises(DatabaseError, match="violates foreign key constraint"),
        tenant_context(tenant),
    ):
        Conversation.objects.create(
            brand_id=foreign_brand.pk,
            contact=contact,
            platform="sandbox",
            origin="mention",
        )
    with tenant_context(tenant):
        assert Conversation.objects.count() == 0
