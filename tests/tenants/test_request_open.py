"""Opening a workspace for a request: one statement between BEGIN and COMMIT.

The tenant middleware opens `/api/v1/t/<slug>/` and `/t/<slug>/` requests with one
call of `earshot_open_api` (bearer tokens) or `earshot_open_member` (sessions):
workspace, `SET LOCAL app.tenant_id` and the credentials under RLS
(tenants/opening.py, migration tenants 0005). These tests pin the statements, the
answers to outsiders, and that the setting still lives only as long as the
request's transaction.
"""

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.utils.timezone import now
from rest_framework.test import APIClient

from tenants import opening
from tenants.api_tokens import (
    create_api_token,
    open_tenant_with_token,
    revoke_api_token,
    token_digest,
)
from tenants.context import current_tenant_id, open_tenant_context, tenant_context
from tenants.exceptions import TenantContextConflict
from tenants.models import ApiToken, Membership, Tenant, User
from tests.api_clients import base, session
from tests.conftest import login
from tests.demo_subprocess import run_on_demo_sqlite
from tests.factories import membership_of
from tests.statements import Statements, count_statements

pytestmark = pytest.mark.django_db(transaction=True)

NOT_FOUND = {
    "code": "not_found",
    "message": "No such workspace, or it is not open to you.",
    "fields": {},
    "details": {},
}


def new_token(tenant: Tenant, user: User, scope: str = "read") -> tuple[ApiToken, str]:
    with tenant_context(tenant):
        return create_api_token(membership_of(tenant, user), name="t", scope=scope)


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def ping(client: Any, tenant: Tenant) -> Any:
    return client.get(f"{base(tenant)}/ping/")


def measured(call: Any) -> tuple[Any, Statements]:
    with count_statements() as seen:
        response = call()
    return response, seen


def setting_on_this_connection() -> tuple[int, str | None]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), current_setting('app.tenant_id', true)"
        )
        pid, value = cursor.fetchone()
    return pid, value


def last_used(tenant: Tenant, token: ApiToken) -> Any:
    with tenant_context(tenant):
        return ApiToken.objects.get(pk=token.pk).last_used_at


# --- statements --------------------------------------------------------------


def test_a_token_ping_is_begin_one_statement_commit(
    tenant: Tenant, owner: User
) -> None:
    _, raw = new_token(tenant, owner)
    client = bearer(raw)

    response, seen = measured(lambda: ping(client, tenant))

    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True}
    assert len(seen) == 3, seen.listing()
    assert seen.sql[0] == "BEGIN", seen.listing()
    assert "FROM earshot_open_api(" in seen.sql[1], seen.listing()
    assert seen.sql[2] == "COMMIT", seen.listing()


def test_a_token_list_call_adds_only_its_own_statements(
    tenant: Tenant, owner: User
) -> None:
    _, raw = new_token(tenant, owner)
    client = bearer(raw)

    response, seen = measured(lambda: client.get(f"{base(tenant)}/brands/"))

    assert response.status_code == 200
    assert [b["name"] for b in response.json()] == ["Acme Air"]
    assert len(seen) == 4, seen.listing()
    assert seen.reads("tenants_brand") == 1, seen.listing()
    assert seen.reads("tenants_membership") == 0, seen.listing()
    assert seen.reads("tenants_apitoken") == 0, seen.listing()


def test_a_session_api_call_opens_with_one_statement(
    tenant: Tenant, owner: User
) -> None:
    client = session(owner)

    response, seen = measured(lambda: ping(client, tenant))

    assert response.status_code == 200, response.content
    # Django's session and user lookups, then BEGIN, the opening, COMMIT.
    assert len(seen) == 5, seen.listing()
    assert '"django_session"' in seen.sql[0], seen.listing()
    assert '"tenants_user"' in seen.sql[1], seen.listing()
    assert seen.sql[2] == "BEGIN", seen.listing()
    assert "FROM earshot_open_member(" in seen.sql[3], seen.listing()
    assert seen.sql[4] == "COMMIT", seen.listing()


def test_a_page_opens_with_one_statement(tenant: Tenant, owner: User) -> None:
    client = login(owner)
    client.get(f"/t/{tenant.slug}/")

    response, seen = measured(lambda: client.get(f"/t/{tenant.slug}/"))

    assert response.status_code == 200
    assert seen.sql[2] == "BEGIN", seen.listing()
    assert "FROM earshot_open_member(" in seen.sql[3], seen.listing()
    assert sum("earshot_open" in sql for sql in seen.sql) == 1, seen.listing()
    assert seen.sql[-1] == "COMMIT", seen.listing()
    # session, user, BEGIN, open; the page's own 8 (the workspace picker under
    # user_scope in a savepoint: 5, accounts, brands, members); COMMIT
    assert len(seen) == 13, seen.listing()


def test_last_used_is_written_once_a_minute_inside_the_opening(
    tenant: Tenant, owner: User
) -> None:
    token, raw = new_token(tenant, owner)
    client = bearer(raw)
    assert last_used(tenant, token) is None

    first, seen_first = measured(lambda: ping(client, tenant))
    stamped = last_used(tenant, token)
    second, seen_second = measured(lambda: ping(client, tenant))
    unchanged = last_used(tenant, token)
    with tenant_context(tenant):
        ApiToken.objects.filter(pk=token.pk).update(
            last_used_at=now() - timedelta(minutes=2)
        )
    third, seen_third = measured(lambda: ping(client, tenant))

    assert [first.status_code, second.status_code, third.status_code] == [200] * 3
    assert [len(seen_first), len(seen_second), len(seen_third)] == [3, 3, 3]
    assert stamped is not None
    assert now() - stamped < timedelta(seconds=30)
    assert unchanged == stamped
    assert last_used(tenant, token) > stamped


# --- outsiders ---------------------------------------------------------------


def test_ping_without_credentials_is_401(tenant: Tenant) -> None:
    response, seen = measured(lambda: ping(APIClient(), tenant))

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert len(seen) == 0, seen.listing()


def test_ping_with_a_token_of_another_workspace_is_404(
    tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    token, raw = new_token(other_tenant, outsider, "admin")

    response, seen = measured(lambda: ping(bearer(raw), tenant))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert seen.sql[-1] == "ROLLBACK", seen.listing()
    assert last_used(other_tenant, token) is None


def test_ping_with_another_users_session_is_404(
    tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    response = ping(session(outsider), tenant)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_ping_with_a_revoked_token_is_404(tenant: Tenant, owner: User) -> None:
    token, raw = new_token(tenant, owner)
    with tenant_context(tenant):
        revoke_api_token(membership_of(tenant, owner), token=token)

    response = ping(bearer(raw), tenant)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert last_used(tenant, token) is None


def test_ping_with_a_token_that_is_not_one_is_404_without_a_statement(
    tenant: Tenant, owner: User
) -> None:
    response, seen = measured(lambda: ping(bearer("not-a-token"), tenant))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert len(seen) == 0, seen.listing()


def test_ping_of_an_unknown_or_deleted_workspace_is_404(
    tenant: Tenant, owner: User
) -> None:
    token, raw = new_token(tenant, owner)
    unknown = ping(bearer(raw), Tenant(slug="no-such-workspace"))
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.DELETED)

    deleted = ping(bearer(raw), tenant)

    assert [unknown.status_code, deleted.status_code] == [404, 404]
    assert unknown.json() == NOT_FOUND
    assert deleted.json() == NOT_FOUND
    assert last_used(tenant, token) is None


def test_ping_with_the_token_of_a_deactivated_user_is_404(
    tenant: Tenant, agent: User
) -> None:
    token, raw = new_token(tenant, agent)
    User.objects.filter(pk=agent.pk).update(is_active=False)

    response = ping(bearer(raw), tenant)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert last_used(tenant, token) is None


def test_ping_of_a_suspended_workspace_is_403(tenant: Tenant, owner: User) -> None:
    _, raw = new_token(tenant, owner)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)

    by_token = ping(bearer(raw), tenant)
    by_session = ping(session(owner), tenant)

    for response in (by_token, by_session):
        assert response.status_code == 403
        assert response.json()["code"] == "workspace_suspended"


def test_ping_answers_every_role_and_scope(
    tenant: Tenant, owner: User, viewer: User
) -> None:
    _, raw = new_token(tenant, viewer, "read")

    assert ping(bearer(raw), tenant).json() == {"ok": True}
    assert ping(session(viewer), tenant).json() == {"ok": True}


def test_the_token_user_and_membership_come_from_the_opening(
    tenant: Tenant, agent: User
) -> None:
    token, raw = new_token(tenant, agent, "write")
    opener = lambda: open_tenant_with_token(tenant.slug, raw)  # noqa: E731
    with open_tenant_context(opener) as opened, count_statements() as seen:
        assert opened.token is not None
        user = opened.token.membership.user
        assert opened.token.tenant == tenant
        assert opened.membership.tenant == tenant
        assert opened.membership is opened.token.membership

    assert len(seen) == 0, seen.listing()
    assert user == agent
    assert user.email == agent.email
    assert opened.membership.user is user
    assert opened.membership.role == Membership.Role.AGENT
    assert opened.token.pk == token.pk
    assert opened.token.scope == "write"
    assert opened.tenant.slug == tenant.slug


def test_the_opened_rows_are_the_instances_from_db_makes(
    tenant: Tenant, agent: User
) -> None:
    _, raw = new_token(tenant, agent, "write")
    sql, parts = opening._statement("earshot_open_api", 4, opening.API_PARTS, "default")
    moment = now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [tenant.slug, token_digest(raw), moment, moment])
        row = cursor.fetchone()
    assert row is not None
    made, start = [], 0
    for part in parts:
        values = row[start : start + len(part.names)]
        start += len(part.names)
        fast = part.build(values, "default")
        converted = list(values)
        for index, converters, expression in part.converters:
            for convert in converters:
                converted[index] = convert(converted[index], expression, connection)
        reference = part.model.from_db("default", part.names, converted)
        made.append(
            (
                type(fast),
                {k: v for k, v in vars(fast).items() if k != "_state"},
                fast._state.adding,
                fast._state.db,
            )
        )
        assert made[-1] == (
            type(reference),
            {k: v for k, v in vars(reference).items() if k != "_state"},
            reference._state.adding,
            reference._state.db,
        )

    # Every part takes the fast path on these models (no __init__ of their own).
    assert [part.plain for part in parts] == [True, True, True, True]
    assert [kind for kind, *_ in made] == [Tenant, ApiToken, Membership, User]


# --- the setting lives as long as the transaction ------------------------------


def test_the_setting_is_gone_after_the_request(tenant: Tenant, owner: User) -> None:
    _, raw = new_token(tenant, owner)
    pid_before, _ = setting_on_this_connection()

    assert ping(bearer(raw), tenant).status_code == 200
    pid_after, value = setting_on_this_connection()

    assert pid_after == pid_before
    assert value == ""
    assert current_tenant_id() is None


def test_the_setting_is_gone_after_a_refused_request(
    tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    assert ping(session(outsider), tenant).status_code == 404

    _, value = setting_on_this_connection()

    assert value in {"", None}
    assert current_tenant_id() is None


def test_the_opening_applies_the_setting_for_its_transaction_only(
    tenant: Tenant, owner: User
) -> None:
    _, raw = new_token(tenant, owner)
    with open_tenant_context(lambda: open_tenant_with_token(tenant.slug, raw)):
        _, inside = setting_on_this_connection()
        assert current_tenant_id() == tenant.pk
    _, after = setting_on_this_connection()

    assert inside == str(tenant.pk)
    assert after == ""
    assert current_tenant_id() is None


def test_the_opening_inside_an_outer_transaction_clears_the_setting(
    tenant: Tenant, owner: User
) -> None:
    _, raw = new_token(tenant, owner)
    with transaction.atomic():
        with open_tenant_context(lambda: open_tenant_with_token(tenant.slug, raw)):
            pass
        _, after = setting_on_this_connection()

    assert after == ""


def test_another_tenant_inside_an_opened_one_is_refused(
    tenant: Tenant, owner: User, other_tenant: Tenant
) -> None:
    _, raw = new_token(tenant, owner)
    with open_tenant_context(lambda: open_tenant_with_token(tenant.slug, raw)):
        with pytest.raises(TenantContextConflict), tenant_context(other_tenant):
            pass
        _, still = setting_on_this_connection()

    assert still == str(tenant.pk)


def test_opening_another_workspace_inside_an_open_one_is_refused(
    tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    _, raw = new_token(other_tenant, outsider)
    with tenant_context(tenant):
        with (
            pytest.raises(TenantContextConflict),
            open_tenant_context(lambda: open_tenant_with_token(other_tenant.slug, raw)),
        ):
            pass
        _, still = setting_on_this_connection()
        assert current_tenant_id() == tenant.pk

    assert still == str(tenant.pk)


def test_the_functions_run_as_the_caller_and_keep_the_setting() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, prosecdef, proconfig, "
            "has_function_privilege(current_user, oid, 'EXECUTE') "
            "FROM pg_proc WHERE proname LIKE 'earshot_open_%%' ORDER BY proname"
        )
        rows = cursor.fetchall()

    # SECURITY INVOKER (RLS applies as to any query of the runtime role), and no
    # SET clause, which would undo the SET LOCAL when the function returns.
    assert rows == [
        ("earshot_open_api", False, None, True),
        ("earshot_open_member", False, None, True),
    ]


def test_the_member_function_sees_no_membership_of_another_workspace(
    tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM earshot_open_member(%s, %s)",
            [tenant.slug, outsider.pk],
        )
        foreign = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM earshot_open_member(%s, %s)",
            [other_tenant.slug, outsider.pk],
        )
        own = cursor.fetchone()

    assert foreign == (0,)
    assert own == (1,)


# --- the last_used_at touch under concurrent requests ---------------------------

OPEN_API = "SELECT (r.token_row).last_used_at FROM earshot_open_api(%s, %s, %s, %s) r"


def runtime_connection() -> psycopg.Connection[Any]:
    """A connection of its own as the runtime role (Django's is the test's)."""
    params = connection.get_connection_params()
    return psycopg.connect(
        **{
            key: params[key]
            for key in ("dbname", "user", "host", "port")
            if params.get(key)
        },
        password=params.get("password") or None,
    )


def test_a_second_request_skips_a_touch_held_by_another_and_does_not_wait(
    tenant: Tenant, owner: User
) -> None:
    token, raw = new_token(tenant, owner)
    digest = token_digest(raw)
    first_at = now()
    second_at = first_at + timedelta(seconds=1)
    minute = timedelta(minutes=1)
    with runtime_connection() as first, runtime_connection() as second:
        # The first request touched the stale stamp and has not committed yet.
        seen_first = first.execute(
            OPEN_API, [tenant.slug, digest, first_at, first_at - minute]
        ).fetchone()
        # The second read the same stale stamp: with 0005's function it waited on
        # the first one's row lock until its COMMIT (here: lock_timeout, an error).
        second.execute("SET lock_timeout = '200ms'")
        started = time.monotonic()
        seen_second = second.execute(
            OPEN_API, [tenant.slug, digest, second_at, second_at - minute]
        ).fetchone()
        waited = time.monotonic() - started
        second.commit()
        first.commit()
        stamped = last_used(tenant, token)
        # A later request within the minute finds it fresh: nothing written.
        second.execute(OPEN_API, [tenant.slug, digest, second_at, second_at - minute])
        second.commit()
        fresh = last_used(tenant, token)
        # Once it is stale again, the next request stamps it.
        later = first_at + timedelta(minutes=2)
        seen_later = second.execute(
            OPEN_API, [tenant.slug, digest, later, later - minute]
        ).fetchone()
        second.commit()

    assert seen_first == (first_at,)
    assert seen_second == (None,)  # the stamp it read; its touch was skipped
    assert waited < 0.2
    assert stamped == first_at
    assert fresh == first_at
    assert seen_later == (later,)
    assert last_used(tenant, token) == later


def test_a_touch_skipped_for_a_held_row_still_answers_the_whole_opening(
    tenant: Tenant, owner: User
) -> None:
    token, raw = new_token(tenant, owner)
    digest = token_digest(raw)
    at = now()
    columns = (
        "SELECT (r.tenant_row).id, (r.token_row).id, (r.membership_row).id, "
        "(r.user_row).id, current_setting('app.tenant_id', true) "
        "FROM earshot_open_api(%s, %s, %s, %s) r"
    )
    with runtime_connection() as holder, runtime_connection() as caller:
        # Another transaction holds the token row (as a touching request would).
        holder.execute(f"SET LOCAL app.tenant_id = {int(tenant.pk)}")
        holder.execute(
            "SELECT id FROM tenants_apitoken WHERE id = %s FOR NO KEY UPDATE",
            [token.pk],
        )
        caller.execute("SET lock_timeout = '200ms'")
        row = caller.execute(
            columns, [tenant.slug, digest, at, at - timedelta(minutes=1)]
        ).fetchone()
        caller.commit()
        holder.commit()

    membership = membership_of(tenant, owner)
    assert row == (tenant.pk, token.pk, membership.pk, owner.pk, str(tenant.pk))
    assert last_used(tenant, token) is None


# --- SQLite (the demo) ---------------------------------------------------------


def test_sqlite_opens_the_same_way(tmp_path: Path) -> None:
    outcome = run_on_demo_sqlite("tests.tenants.sqlite_request_open", tmp_path)
    assert outcome == {
        "token ping": [200, {"ok": True}],
        "session ping": [200, {"ok": True}],
        "page": 200,
        "foreign token": [404, "not_found"],
        "revoked token": [404, "not_found"],
        "outsider session": [404, "not_found"],
        "outsider page": 404,
        "no credentials": [401, "not_authenticated"],
        "suspended": [403, "workspace_suspended"],
        "last used stamped": True,
        "last used kept within a minute": True,
    }
