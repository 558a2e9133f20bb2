"""Tenant isolation through pgbouncer in transaction mode (`make serve`'s topology).

One pgbouncer with a pool of ONE server connection, so every transaction of two
clients runs on the same PostgreSQL session, one after the other. `SET LOCAL
app.tenant_id` (what tenants/context.py runs) ends with its transaction, so the
next client's transaction sees none of the previous tenant's rows. A plain `SET`
is the negative control: it outlives the transaction, and the next client, another
tenant's request, would read the first tenant's rows.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from helpdesk.pgbouncer import Pgbouncer, PgbouncerConfig
from tenants.models import Tenant
from tests.factories import make_brand
from tests.helpdesk.live import free_port

pytestmark = pytest.mark.django_db(transaction=True)

Client = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def bouncer_url() -> Iterator[str]:
    """A URL of the runtime role through a transaction-mode pgbouncer, pool size 1."""
    runtime = settings.DATABASES["default"]
    # pgbouncer runs as `postgres` under root: its folder must be reachable.
    folder = Path(tempfile.mkdtemp(prefix="earshot-pgbouncer-"))
    folder.chmod(0o755)
    config = PgbouncerConfig(
        directory=folder / "run",
        listen_port=free_port(),
        databases=(runtime["NAME"],),
        users={runtime["USER"]: None},
        upstream_host=runtime["HOST"],
        upstream_port=int(runtime["PORT"] or 5432),
        pool_size=1,
    )
    bouncer = Pgbouncer(config, folder / "pgbouncer.log")
    bouncer.start()
    try:
        yield (
            f"postgresql://{runtime['USER']}@127.0.0.1:{config.listen_port}"
            f"/{runtime['NAME']}"
        )
    finally:
        bouncer.stop()
        shutil.rmtree(folder)


def _brand_tenants(client: Client, *, tenant_id: int | None) -> tuple[set[int], int]:
    """One transaction: SET LOCAL the tenant (unless None), read which tenants'
    brands are visible; returns them and the server session's pid."""
    with client.transaction(), client.cursor() as cur:
        if tenant_id is not None:
            cur.execute(f"SET LOCAL app.tenant_id = {int(tenant_id)}")
        cur.execute("SELECT DISTINCT tenant_id FROM tenants_brand")
        seen = {int(row[0]) for row in cur.fetchall()}  # type: ignore[call-overload]
        cur.execute("SELECT pg_backend_pid()")
        row = cur.fetchone()
        assert row is not None
        return seen, int(row[0])  # type: ignore[call-overload]


def _connect(url: str) -> Client:
    # No server-side prepared statements behind pgbouncer 1.18 (DATABASE_PGBOUNCER).
    return psycopg.connect(url, prepare_threshold=None)


def test_set_local_isolates_tenants_on_one_server_connection(
    bouncer_url: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    make_brand(tenant, "Acme Sky")
    make_brand(other_tenant, "Globex Sky")
    with _connect(bouncer_url) as acme, _connect(bouncer_url) as globex:
        runs = [
            _brand_tenants(acme, tenant_id=tenant.pk),
            _brand_tenants(globex, tenant_id=other_tenant.pk),
            _brand_tenants(acme, tenant_id=None),
            _brand_tenants(globex, tenant_id=None),
            _brand_tenants(globex, tenant_id=other_tenant.pk),
            _brand_tenants(acme, tenant_id=tenant.pk),
        ]
    assert [seen for seen, _ in runs] == [
        {tenant.pk},
        {other_tenant.pk},
        set(),
        set(),
        {other_tenant.pk},
        {tenant.pk},
    ]
    assert len({pid for _, pid in runs}) == 1


def test_plain_set_would_leak_to_the_next_client(
    bouncer_url: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    make_brand(tenant, "Acme Sky")
    make_brand(other_tenant, "Globex Sky")
    with _connect(bouncer_url) as acme, _connect(bouncer_url) as globex:
        with acme.transaction(), acme.cursor() as cur:
            cur.execute(f"SET app.tenant_id = {int(tenant.pk)}")
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
            assert row is not None
            acme_pid = int(row[0])  # type: ignore[call-overload]
        leaked, pid = _brand_tenants(globex, tenant_id=None)
        with globex.transaction(), globex.cursor() as cur:
            cur.execute("RESET app.tenant_id")
        after_reset, _ = _brand_tenants(globex, tenant_id=None)
    assert pid == acme_pid
    assert leaked == {tenant.pk}
    assert after_reset == set()
