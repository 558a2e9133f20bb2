"""A lookup by key that keeps the conversation's default order reads its row by
key, not by walking an index in that order (helpdesk migration 0022).

The model orders by (queue_at, -last_activity_at), so `filter(pk=...).first()`
(incidents' API) sends `ORDER BY queue_at, last_activity_at DESC LIMIT 1`. While
the table had an index in that order, (tenant_id, queue_at, last_activity_at
DESC, id), the statement's generic plan on tables nobody has analyzed (the
tenant looks like a row) walked it and filtered every row of the tenant for the
one id (40, 450 and 1,000 rows at the sizes below), as the reply's lock once did
(helpdesk.services.reply_lock). Migration 0022 dropped it with (tenant_id,
status, queue_at, id): nothing reads them since the inbox orders by the R10 key.
The statement, as sent, is prepared and its generic plan explained with ANALYZE
at several sizes of one tenant on fresh tables.
"""

import pytest

from helpdesk.models import Conversation
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.test_conversation_key_plans import (
    BY_ID,
    SIZES,
    Sent,
    Tenancy,
    app_plan,
    faults,
    one,
    recording,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]


@pytest.fixture
def tenancy(tenant: Tenant, owner: User) -> Tenancy:
    grown = Tenancy(tenant, owner)
    grown.grow(SIZES[0])
    return grown


def by_key(grown: Tenancy) -> Sent:
    """`Conversation.objects.filter(pk=...).first()` as sent."""
    with tenant_context(grown.tenant):
        pk = Conversation.objects.order_by("id").values_list("pk", flat=True)[3]
        with recording() as sent:
            found = Conversation.objects.filter(pk=pk).first()
    assert found is not None
    return one(sent, 'FROM "helpdesk_conversation"')


def test_a_lookup_by_key_in_the_default_order_reads_the_key(
    tenancy: Tenancy,
) -> None:
    statement = by_key(tenancy)
    sql, _params = statement
    assert 'ORDER BY "helpdesk_conversation"."queue_at" ASC' in sql, sql
    found = {}
    for size in SIZES:
        tenancy.grow(size)
        found[size] = faults(app_plan(tenancy.tenant, statement), BY_ID)

    assert found == {size: [] for size in SIZES}
