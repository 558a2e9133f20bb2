"""The snoozed sweep reads the tenant's snoozed conversations, not all of them,
in the generic plan a long-lived worker keeps for it on tables never analyzed.

`wake_snoozed_conversations` runs for every active tenant from beat, on the same
worker connections, so its prepared statement soon runs on a generic plan. With
the model's default order (queue_at, -last_activity_at) and its LIMIT, that plan
walked an index over every conversation of the tenant and filtered them for the
snoozed ones (through the dropped queue_at index, then through the engagement
index: 1,000 of 1,000 rows). Unordered, the status picks the rows through an
index that starts with (tenant, status).
"""

from typing import Any

import psycopg
import pytest
from django.db import transaction

from helpdesk.models import Conversation
from helpdesk.services.lifecycle import wake_snoozed_conversations
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.test_conversation_key_plans import (
    SIZES,
    Tenancy,
    app_plan,
    one,
    recording,
)
from tests.helpdesk.test_ingest_plans import nodes
from tests.perf.report import conninfo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

SNOOZED = 5


def snooze_some(tenant: Tenant) -> None:
    """The tenant's first SNOOZED conversations, due a minute ago (as the table
    owner, under the tenant's row-level security like the fill)."""
    with psycopg.connect(conninfo("migrator")) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(tenant.pk)])
        conn.execute(
            "UPDATE helpdesk_conversation SET status = 'snoozed', "
            "snoozed_until = now() - interval '1 minute' WHERE id IN ("
            "SELECT id FROM helpdesk_conversation WHERE tenant_id = %s "
            "ORDER BY id LIMIT %s)",
            [tenant.pk, SNOOZED],
        )


def the_sweep(tenant: Tenant) -> tuple[str, list[object]]:
    """The sweep's read as sent, in a transaction rolled back (nothing wakes)."""
    with tenant_context(tenant), transaction.atomic():
        with recording() as sent:
            woken = wake_snoozed_conversations(tenant)
        transaction.set_rollback(True)
    assert woken == SNOOZED
    return one(sent, 'FROM "helpdesk_conversation"')


def rows_read(root: dict[str, Any]) -> list[tuple[int, int]]:
    """Rows each scan of the conversations returned and discarded."""
    return [
        (node["Actual Rows"], node.get("Rows Removed by Filter", 0))
        for node in nodes(root)
        if node.get("Relation Name") == "helpdesk_conversation"
    ]


def test_the_sweep_reads_only_snoozed_rows_as_the_tenant_grows(
    tenant: Tenant, owner: User
) -> None:
    tenancy = Tenancy(tenant, owner)
    tenancy.grow(SIZES[0])
    snooze_some(tenant)
    statement = the_sweep(tenant)
    found = {}
    for size in SIZES:
        tenancy.grow(size)
        found[size] = rows_read(app_plan(tenant, statement))

    assert found == {size: [(SNOOZED, 0)] for size in SIZES}
    with tenant_context(tenant):
        still = Conversation.objects.filter(
            status="snoozed", snoozed_until__isnull=False
        ).count()
    assert still == SNOOZED  # the sweep's transaction was rolled back
