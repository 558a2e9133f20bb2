"""Prepared statements on the runtime role's direct PostgreSQL connections.

helpdesk.settings binds values server-side and lets psycopg prepare a statement
once it has run DATABASE_PREPARE_THRESHOLD times on a connection. A prepared
statement keeps its plan for the connection's life, across requests and tenants:
the plan must read the tenant when it runs (RLS through current_setting), never
carry the tenant it was first planned for. Behind pgbouncer in transaction mode
(DATABASE_PGBOUNCER=1) statements are never prepared: the next transaction may run
on another server session, which does not know them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tenants.context import tenant_context
from tenants.models import Tenant
from tests.factories import make_brand

# The brand read below has no tenant filter on purpose (RLS alone scopes it).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

ROOT = Path(__file__).resolve().parent.parent


# No tenant in the statement: which brands it reads is RLS's alone.
BRAND_NAMES = "SELECT name FROM tenants_brand WHERE name <> %s ORDER BY name"


def _brand_names(*, generic: bool = False) -> list[str]:
    with connection.cursor() as cursor:
        if generic:  # the plan made without parameter values, cached and reused
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(BRAND_NAMES, [""])
        return [row[0] for row in cursor.fetchall()]


def _prepared_brand_reads() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements "
            "WHERE statement LIKE %s AND NOT from_sql",
            ["SELECT name FROM tenants_brand WHERE%"],
        )
        return [row[0] for row in cursor.fetchall()]


def test_the_runtime_connection_prepares_a_statement_after_the_threshold(
    tenant: Tenant,
) -> None:
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["server_side_binding"] is True
    threshold = options["prepare_threshold"]
    assert threshold == settings.DATABASE_PREPARE_THRESHOLD == 2
    with tenant_context(tenant):
        for _ in range(threshold):
            assert _brand_names() == ["Acme Air"]
        assert _prepared_brand_reads() == []
        assert _brand_names() == ["Acme Air"]
        assert _prepared_brand_reads() == [
            "SELECT name FROM tenants_brand WHERE name <> $1 ORDER BY name"
        ]


@pytest.mark.parametrize("generic", [False, True], ids=["auto-plan", "generic-plan"])
def test_a_prepared_statement_reads_the_tenant_of_each_transaction(
    tenant: Tenant, other_tenant: Tenant, generic: bool
) -> None:
    with tenant_context(tenant):
        make_brand(tenant, "Acme Cargo")
    with tenant_context(other_tenant):
        make_brand(other_tenant, "Globex Labs")
    # Prepared (and planned) in Acme's transactions, on this one connection.
    for _ in range(6):
        with tenant_context(tenant):
            assert _brand_names(generic=generic) == ["Acme Air", "Acme Cargo"]
    with tenant_context(tenant):
        assert len(_prepared_brand_reads()) == 1
    with tenant_context(other_tenant):
        assert _brand_names(generic=generic) == ["Globex", "Globex Labs"]
        assert len(_prepared_brand_reads()) == 1
    with tenant_context(tenant):
        assert _brand_names(generic=generic) == ["Acme Air", "Acme Cargo"]
    # Outside any tenant the same prepared statement reads nothing.
    assert _brand_names() == []


def _runtime_options(**env: str) -> dict[str, object]:
    code = (
        "import json; from helpdesk import settings as s; "
        "print(json.dumps({k: v for k, v in s.DATABASES['default']"
        ".get('OPTIONS', {}).items() if k != 'pool'}))"
    )
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "EARSHOT_TEST_DERIVED_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
            "SECRET_KEY": "settings-probe-" + "x" * 40,
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    options: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return options


def test_settings_prepare_on_direct_connections_only() -> None:
    direct = "postgresql://app@127.0.0.1:5432/earshot"
    assert _runtime_options(DATABASE_URL=direct) == {
        "server_side_binding": True,
        "prepare_threshold": 2,
    }
    assert _runtime_options(DATABASE_URL=direct, DATABASE_PREPARE_THRESHOLD="5") == {
        "server_side_binding": True,
        "prepare_threshold": 5,
    }
    assert _runtime_options(DATABASE_URL=direct, DATABASE_PGBOUNCER="1") == {
        "server_side_binding": False,
        "prepare_threshold": None,
    }
    assert _runtime_options(DATABASE_URL=direct, DATABASE_PREPARED_STATEMENTS="0") == {}
    sqlite = _runtime_options(DATABASE_URL="sqlite:////tmp/earshot-probe.sqlite3")
    assert "server_side_binding" not in sqlite
    assert "prepare_threshold" not in sqlite
