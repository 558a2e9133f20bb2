"""The reply's row lock (helpdesk.services.reply_lock) asks for its one row by
key, without an order.

With the model's inbox order (queue_at, -last_activity_at) in its ORDER BY, the
planner could take the row from the tenant's (tenant_id, queue_at,
last_activity_at, id) index, which returns rows in that order, and walk it: every
entry of the tenant's conversations for every reply (on a profile database of 400
conversations whose replies had left that index 75-133 pages, 0.34 ms against
0.18 ms without the order, EXPLAIN ANALYZE min of 20, load 8).
"""

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from helpdesk.models import Conversation
from helpdesk.services.reply_lock import lock_conversation_for_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpdesk.test_write_path_plans import (
    analyzed,
    explained,
    faults,
    filled,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

__all__ = ["analyzed", "filled"]  # the fixtures, for pytest

KEYS = {
    "helpdesk_conversation": {
        "helpdesk_conversation_pkey",
        "helpdesk_conversation_tenant_id_uniq",
    }
}


def lock_statement(tenant: Tenant) -> str:
    """The row lock's statement as sent for one of the tenant's conversations."""
    with tenant_context(tenant):
        conversation = Conversation.objects.order_by("id")[700]
        with transaction.atomic(), CaptureQueriesContext(connection) as captured:
            locked = lock_conversation_for_reply(conversation.pk)
            transaction.set_rollback(True)
    assert locked.pk == conversation.pk
    [query] = captured.captured_queries
    sql: str = query["sql"]
    return sql


def test_the_reply_lock_asks_for_no_order(
    filled: tuple[Tenant, SocialAccount],
) -> None:
    sql = lock_statement(filled[0])

    assert " FOR UPDATE OF " in sql
    assert " ORDER BY " not in sql


def test_the_reply_lock_reads_the_key_after_analyze(
    filled: tuple[Tenant, SocialAccount], analyzed: None
) -> None:
    tenant = filled[0]
    plan: dict[str, Any] = explained(tenant, lock_statement(tenant))

    assert faults(plan, KEYS) == []
