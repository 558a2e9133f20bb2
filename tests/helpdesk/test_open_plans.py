"""The breach sweep, the daily digest and the engagement read keep to their
rows on tables nobody has analyzed, in both plan modes (helpdesk migration 0024).

Each statement is sent by the app as it runs, then prepared on a new backend as
the runtime role under the tenant's row-level security and explained with
ANALYZE under force_generic_plan (what a long-lived worker keeps from a prepared
statement's sixth run) and force_custom_plan (planned with its values): every
scan must read a bounded number of rows (kept, filtered out or rechecked away),
never the tenant's conversations. The tenant holds 3,000 conversations, each
with a due time (tests.perf.benchdb), beside three other workspaces.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from helpdesk.models import Contact
from helpdesk.services import breaches, digest
from social import engagement
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.helpdesk.conftest import make_account
from tests.helpdesk.fakes import FakeConnector
from tests.helpdesk.test_generic_plans import MODES, explained, recording, rows_read
from tests.helpdesk.test_read_plans import never_analyzed
from tests.helpdesk.test_write_path_plans import superuser
from tests.perf.benchdb import fill_with_neighbours
from tests.perf.report import conninfo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

Sent = tuple[str, Any]

TARGET = {"contacts": 2000, "conversations": 3000, "per_conversation": 1}
OTHERS = {"contacts": 400, "conversations": 800, "per_conversation": 1}
# Rows of the kind each statement looks for; a scan may read those and what its
# bounds pass over, never the tenant's conversations.
WAITING = 10
BOUND = 100
CONVERSATIONS = '"helpdesk_conversation"'


def as_owner(tenant: Tenant, sql: str, params: list[Any]) -> None:
    """`sql` run as the table owner under the tenant's row-level security."""
    with psycopg.connect(conninfo("migrator")) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(tenant.pk)])
        conn.execute(sql, params)


@pytest.fixture
def filled(tenant: Tenant, owner: User) -> Tenant:
    make_account(tenant)
    fill_with_neighbours(tenant, owner, TARGET, OTHERS, 3)
    return tenant


def sent(tenant: Tenant, run: Callable[[], Any], marker: str) -> tuple[Any, list[Sent]]:
    """What `run` answers and the statements it sends that name `marker`, as
    sent (in the tenant's context, in a transaction rolled back)."""
    with tenant_context(tenant), recording() as statements, transaction.atomic():
        answer = run()
        transaction.set_rollback(True)
    return answer, [(sql, params) for sql, params in statements if marker in sql]


def over(tenant: Tenant, statements: list[Sent]) -> dict[str, list[str]]:
    """Per plan mode, the scans of `statements` that read more than BOUND rows."""
    return {
        mode: [
            f"{n}: {rows} {scan}"
            for n, statement in enumerate(statements)
            for rows, scan in rows_read(explained(tenant, statement, mode))
            if rows > BOUND
        ]
        for mode in MODES
    }


# The breach sweep: every running clock of the fill started at its
# conversation's start; every due one is marked breached but the WAITING latest
# (a breached clock waits for an answer with its due time kept).
# Resolving clears the clock (helpdesk.services.sla), so the resolved ones of
# the fill have none.
STARTED = (
    "UPDATE helpdesk_conversation SET sla_started_at = CASE WHEN status <> 'resolved'"
    " THEN created_at END, sla_due_at = CASE WHEN status <> 'resolved'"
    " THEN sla_due_at END, sla_kind = CASE WHEN status <> 'resolved'"
    " THEN sla_kind ELSE '' END WHERE tenant_id = %s"
)
BREACHED = (
    "UPDATE helpdesk_conversation SET sla_breached_at = sla_due_at"
    " WHERE tenant_id = %s AND status <> 'resolved' AND id NOT IN ("
    "  SELECT id FROM helpdesk_conversation WHERE tenant_id = %s"
    "  AND status <> 'resolved' AND sla_due_at <= now()"
    "  ORDER BY sla_due_at DESC LIMIT %s)"
    " AND sla_due_at <= now()"
)


def breach_read(tenant: Tenant) -> tuple[list[int], Sent]:
    """The ids the sweep marks breached now (rolled back) and its read of them."""
    now = timezone.now()
    swept, [read, _soon] = sent(
        tenant, lambda: breaches.sweep_sla_clocks(tenant, now=now), "SKIP LOCKED"
    )
    return swept.breached, read


def breached(tenant: Tenant, waiting: int) -> None:
    as_owner(tenant, STARTED, [tenant.pk])
    as_owner(tenant, BREACHED, [tenant.pk, tenant.pk, waiting])


def test_the_breach_sweep_reads_its_due_clocks_not_the_breached_ones(
    filled: Tenant,
) -> None:
    breached(filled, WAITING)
    due, read = breach_read(filled)

    assert len(due) == WAITING
    assert over(filled, [read]) == {mode: [] for mode in MODES}
    assert never_analyzed()["analyzed"] == []


def test_the_bound_catches_the_sweep_through_the_shared_due_index(
    filled: Tenant,
) -> None:
    # The same read with the index of all due clocks, as before migration 0024.
    breached(filled, WAITING)
    _due, read = breach_read(filled)
    with superuser() as conn:
        conn.execute("BEGIN")
        conn.execute("DROP INDEX helpdesk_conv_unbreached_ix")
        conn.execute("COMMIT")
    try:
        found = over(filled, [read])
    finally:
        with superuser() as conn:
            conn.execute(
                "CREATE INDEX helpdesk_conv_unbreached_ix ON helpdesk_conversation"
                " (tenant_id, sla_due_at, id) WHERE sla_due_at IS NOT NULL"
                " AND sla_breached_at IS NULL"
            )
            conn.commit()

    assert all(found.values())


def test_the_digest_reads_the_brands_open_breaches_and_their_contacts_by_key(
    filled: Tenant,
) -> None:
    breached(filled, 0)
    as_owner(
        filled,
        "UPDATE helpdesk_conversation SET sla_breached_at = NULL WHERE tenant_id = %s"
        " AND id NOT IN (SELECT id FROM helpdesk_conversation WHERE tenant_id = %s"
        " AND sla_breached_at IS NOT NULL ORDER BY id LIMIT %s)",
        [filled.pk, filled.pk, WAITING],
    )
    with tenant_context(filled):
        brand = Brand.objects.get()
        found = digest.open_breaches(brand)
        names = dict(
            Contact.objects.filter(pk__in=[c.contact_id for c in found]).values_list(
                "pk", "display_name"
            )
        )
    _found, statements = sent(filled, lambda: digest.open_breaches(brand), '"helpdesk_')

    assert len(found) == WAITING
    assert [str(c.contact) for c in found] == [names[c.contact_id] for c in found]
    assert len(statements) == 1
    assert over(filled, statements) == {mode: [] for mode in MODES}


# The engagement read: all but YOUNG conversations began before TRACK_FOR; the
# old ones were read once long ago, the young ones are due or never read.
YOUNG = 40


def test_the_engagement_read_keeps_to_its_window(
    filled: Tenant, fake_platforms: type[FakeConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_platforms, "engagement_batch", 100)
    at = timezone.now()
    as_owner(
        filled,
        "UPDATE helpdesk_conversation SET created_at = created_at - interval '4 days',"
        " engagement_next_at = CASE WHEN id %% 2 = 0"
        "  THEN created_at - interval '4 days' + interval '2 minutes' END"
        " WHERE tenant_id = %s AND id NOT IN (SELECT id FROM helpdesk_conversation"
        "  WHERE tenant_id = %s ORDER BY created_at DESC LIMIT %s)",
        [filled.pk, filled.pk, YOUNG],
    )
    as_owner(
        filled,
        "UPDATE helpdesk_conversation SET engagement_next_at = %s - interval '1 minute'"
        " WHERE tenant_id = %s AND created_at > %s AND id %% 2 = 0",
        [at, filled.pk, at - timedelta(days=1)],
    )
    with tenant_context(filled):
        due = engagement.due_posts(at=at)
    _due, statements = sent(
        filled, lambda: engagement.due_posts(at=at), f"FROM {CONVERSATIONS}"
    )

    # The fill's young open and pending conversations: a third of them.
    assert sum(len(posts) for posts in due.values()) == 12
    assert len(statements) == 2
    assert over(filled, statements) == {mode: [] for mode in MODES}
    assert connection.vendor == "postgresql"


# PostgreSQL's check of a user's rows when the user is deleted (ri_triggers.c):
# by the user alone, across tenants, without row-level security.
USER_CHECK = (
    'SELECT 1 FROM ONLY "public"."helpdesk_conversation" x WHERE $1'
    ' OPERATOR(pg_catalog.=) "{column}" FOR KEY SHARE OF x'
)


def user_check_reads(column: str, user_id: int) -> dict[str, list[tuple[int, str]]]:
    """The rows each scan of the check reads, per plan mode (rolled back)."""
    found = {}
    with superuser() as conn:
        conn.execute(
            f"PREPARE user_check (bigint) AS {USER_CHECK.format(column=column)}"
        )
        for mode in MODES:
            conn.execute(f"SET plan_cache_mode = {mode}")
            row = conn.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE user_check({int(user_id)})"
            ).fetchone()
            assert row is not None
            found[mode] = rows_read(row[0][0]["Plan"])
        conn.rollback()
    return found


def test_a_users_no_reply_marks_are_checked_through_their_index(
    filled: Tenant, owner: User
) -> None:
    as_owner(
        filled,
        "UPDATE helpdesk_conversation SET no_reply_by_id = %s, no_reply_reason = 'spam'"
        " WHERE tenant_id = %s AND id IN (SELECT id FROM helpdesk_conversation"
        " WHERE tenant_id = %s ORDER BY id LIMIT %s)",
        [owner.pk, filled.pk, filled.pk, WAITING],
    )

    reads = user_check_reads("no_reply_by_id", owner.pk)

    # Only the marked rows (before migration 0024: a sequential scan of every
    # tenant's conversations, 5,400).
    assert {mode: [rows for rows, _scan in read] for mode, read in reads.items()} == {
        mode: [WAITING] for mode in MODES
    }
