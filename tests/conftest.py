"""Personas and suite-wide guards.

Personas (healthchecks' alice/bob/charlie): `tenant` "Acme Air" with `owner`,
`admin`, `agent` and `viewer`; `other_tenant` "Globex" whose owner is `outsider`.
Every test runs under the SQL auditor (tests/sql_audit.py).
"""

from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client

from tenants.dbroles import RolePlan, ensure_roles_and_database
from tenants.models import Membership, Tenant, User
from tests.factories import PASSWORD, add_member, make_user, make_workspace
from tests.social.fakeserver import FakeServer
from tests.sql_audit import SqlAuditor

Role = Membership.Role


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker: pytest.FixtureRequest) -> Iterator[None]:
    """Create the owner and runtime roles and a fresh database; migrate as owner."""
    default, owner = settings.DATABASES["default"], settings.DATABASES["migrator"]
    plan = RolePlan(
        superuser_url=getattr(settings, "TEST_PG_SUPERUSER_URL"),  # noqa: B009
        database=default["NAME"],
        owner=owner["USER"],
        app=default["USER"],
    )
    # xdist's workers share the two roles: one of them creates or alters them at a time.
    with psycopg.connect(plan.superuser_url, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(hashtext('earshot_test_roles'))")
        ensure_roles_and_database(plan, recreate=True)
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        call_command("migrate", database="migrator", verbosity=0)
        connections["migrator"].close()
    yield
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        connections.close_all()


@pytest.fixture(autouse=True)
def sql_audit(request: pytest.FixtureRequest) -> Iterator[SqlAuditor]:
    auditor = SqlAuditor()
    if request.node.get_closest_marker("sql_audit_exempt"):
        auditor.paused = 1
    with connection.execute_wrapper(auditor):
        yield auditor
    assert auditor.violations == []


@pytest.fixture(autouse=True)
def _block_outbound_http() -> Iterator[None]:
    """social/http.py raises unless a test installs a fake (fake_http fixture)."""
    from social import http as social_http
    from tests.social.fakeserver import blocking_client

    social_http.install_client(blocking_client())
    yield
    social_http.install_client(None)


@pytest.fixture
def fake_http() -> Iterator["FakeServer"]:
    """A fake platform server on 127.0.0.1, with social/http.py allowed to reach it."""
    from social import http as social_http
    from tests.social.fakeserver import FakeServer, loopback_client, running

    with running(FakeServer()) as server:
        social_http.install_client(loopback_client())
        yield server


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    yield
    if "redis" in settings.CACHES["default"]["BACKEND"].lower():
        cache.clear()


@pytest.fixture
def owner() -> User:
    return make_user("olivia@acme.example", display_name="Olivia")


@pytest.fixture
def tenant(owner: User) -> Tenant:
    return make_workspace("Acme Air", owner=owner)


@pytest.fixture
def admin(tenant: Tenant) -> User:
    user = make_user("ada@acme.example", display_name="Ada")
    add_member(tenant, user, Role.ADMIN)
    return user


@pytest.fixture
def agent(tenant: Tenant) -> User:
    user = make_user("andy@acme.example", display_name="Andy")
    add_member(tenant, user, Role.AGENT)
    return user


@pytest.fixture
def viewer(tenant: Tenant) -> User:
    user = make_user("vera@acme.example", display_name="Vera")
    add_member(tenant, user, Role.VIEWER)
    return user


@pytest.fixture
def outsider() -> User:
    return make_user("charlie@globex.example", display_name="Charlie")


@pytest.fixture
def other_tenant(outsider: User) -> Tenant:
    return make_workspace("Globex", owner=outsider)


def login(user: User) -> Client:
    client = Client()
    assert client.login(email=user.email, password=PASSWORD)
    return client
