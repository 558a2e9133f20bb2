"""How the opening functions apply `app.tenant_id` (migration tenants 0011).

Since 0011 `earshot_open_api` and `earshot_open_member` apply the workspace's
setting with `set_config('app.tenant_id', <id>, true)` in a PL/pgSQL assignment
instead of `EXECUTE 'SET LOCAL ...'`. These tests pin what the request path relies
on from that: no dynamic SQL left in the functions, the setting is the id's digits,
it is local to the transaction (a rolled-back savepoint takes it back, COMMIT ends
it) and the RLS reads after it see it; an unknown workspace applies nothing.
tests/tenants/test_request_open.py holds the rest (statements, outsiders, the
`last_used_at` touch, SECURITY INVOKER and no SET clause).
"""

from typing import Any

import pytest
from django.db import connection, transaction
from django.utils.timezone import now

from tenants.api_tokens import create_api_token, token_digest
from tenants.context import tenant_context
from tenants.models import ApiToken, Tenant, User
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)

OPEN_API = "SELECT count(*) FROM earshot_open_api(%s, %s, %s, %s)"
OPEN_MEMBER = "SELECT count(*) FROM earshot_open_member(%s, %s)"


class _Undo(Exception):
    """Raised to roll a savepoint back."""


def new_token(tenant: Tenant, user: User) -> tuple[ApiToken, str]:
    with tenant_context(tenant):
        return create_api_token(membership_of(tenant, user), name="t", scope="read")


def run(cursor: Any, sql: str, params: list[Any] | None = None) -> Any:
    cursor.execute(sql, params or [])
    return cursor.fetchone()


def setting(cursor: Any) -> str | None:
    value: str | None = run(cursor, "SELECT current_setting('app.tenant_id', true)")[0]
    return value


def visible_membership_tenants(cursor: Any) -> list[int]:
    cursor.execute("SELECT DISTINCT tenant_id FROM tenants_membership ORDER BY 1")
    return [row[0] for row in cursor.fetchall()]


def open_in_a_savepoint_then_undo(cursor: Any, tenant: Tenant, user: User) -> list[Any]:
    """Open `tenant` for `user` in a savepoint, note what is seen, roll it back."""
    seen: list[Any] = []
    try:
        with transaction.atomic():
            seen.append(run(cursor, OPEN_MEMBER, [tenant.slug, user.pk]))
            seen.append(setting(cursor))
            seen.append(visible_membership_tenants(cursor))
            raise _Undo
    except _Undo:
        return seen


def test_the_openings_apply_the_setting_with_set_config_not_dynamic_sql() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, prosrc FROM pg_proc "
            "WHERE proname LIKE 'earshot_open_%%' ORDER BY proname"
        )
        bodies = dict(cursor.fetchall())

    assert sorted(bodies) == ["earshot_open_api", "earshot_open_member"]
    for body in bodies.values():
        assert "EXECUTE" not in body.upper()
        assert "SET LOCAL" not in body.upper()
        assert body.count("set_config(") == 1
        assert (
            "applied := set_config('app.tenant_id', found_tenant.id::text, true);"
            in body
        )


@pytest.mark.sql_audit_exempt  # an unscoped read: RLS alone filters it
def test_the_setting_is_the_workspace_id_and_rls_reads_it(
    tenant: Tenant, owner: User, other_tenant: Tenant
) -> None:
    _, raw = new_token(tenant, owner)
    at = now()
    with transaction.atomic(), connection.cursor() as cursor:
        opened = run(cursor, OPEN_API, [tenant.slug, token_digest(raw), at, at])
        applied = setting(cursor)
        visible = visible_membership_tenants(cursor)

    # other_tenant has a membership too (its owner's); RLS hides it.
    assert opened == (1,)
    assert applied == str(tenant.pk)
    assert visible == [tenant.pk]


@pytest.mark.sql_audit_exempt  # an unscoped read: RLS alone filters it
def test_a_rolled_back_savepoint_takes_the_opening_setting_back(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User
) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        first = run(cursor, OPEN_MEMBER, [tenant.slug, owner.pk])
        after_first = setting(cursor)
        inner = open_in_a_savepoint_then_undo(cursor, other_tenant, outsider)
        restored = setting(cursor)
        visible = visible_membership_tenants(cursor)
    with connection.cursor() as cursor:
        after_commit = setting(cursor)

    assert first == (1,)
    assert after_first == str(tenant.pk)
    assert inner == [(1,), str(other_tenant.pk), [other_tenant.pk]]
    assert restored == str(tenant.pk)
    assert visible == [tenant.pk]
    assert after_commit == ""


@pytest.mark.sql_audit_exempt  # an unscoped read: RLS alone filters it
def test_an_unknown_workspace_applies_no_setting(tenant: Tenant, owner: User) -> None:
    token, raw = new_token(tenant, owner)
    at = now()
    with transaction.atomic(), connection.cursor() as cursor:
        before = setting(cursor)
        by_token = run(
            cursor, OPEN_API, ["no-such-workspace", token_digest(raw), at, at]
        )
        by_member = run(cursor, OPEN_MEMBER, ["no-such-workspace", owner.pk])
        after = setting(cursor)
        visible = visible_membership_tenants(cursor)

    assert (by_token, by_member) == ((0,), (0,))
    assert after == before
    assert before in {None, ""}
    assert visible == []
    with tenant_context(tenant):
        assert ApiToken.objects.get(pk=token.pk).last_used_at is None


def test_an_unknown_token_applies_the_setting_and_answers_nothing(
    tenant: Tenant, owner: User
) -> None:
    token, _ = new_token(tenant, owner)
    at = now()
    with transaction.atomic(), connection.cursor() as cursor:
        opened = run(cursor, OPEN_API, [tenant.slug, token_digest("nope"), at, at])
        applied = setting(cursor)

    # As since 0005: the workspace's setting comes before the token is read.
    assert opened == (0,)
    assert applied == str(tenant.pk)
    with tenant_context(tenant):
        assert ApiToken.objects.get(pk=token.pk).last_used_at is None
