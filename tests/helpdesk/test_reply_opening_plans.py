"""The token reply's opening statement (the row lock joined LATERAL to
`earshot_open_api`) reads the conversation by its key, in both plan modes.

The statement is taken as a token reply sends it, then prepared on a new backend
as the runtime role and explained with ANALYZE, generic and custom
(tests/helpdesk/test_generic_plans.py), on tables nobody has analyzed: a
workspace of 3,000 conversations beside three neighbours. The lateral's tenant
filters compare with an expression of the function's row, not a value; the
conversation must still come from one key lookup, every other read a handful of
rows.
"""

from typing import Any

import pytest
from rest_framework.test import APIClient

import helpdesk.access  # noqa: F401 - registers the reply's lateral (on import)
from helpdesk.models import Conversation
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.api_clients import base
from tests.factories import membership_of
from tests.helpdesk.conftest import make_account
from tests.helpdesk.test_generic_plans import MODES, explained, recording, rows_read
from tests.helpdesk.test_read_plans import nodes
from tests.perf.benchdb import fill_with_neighbours

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

TARGET = {"contacts": 1000, "conversations": 3000, "per_conversation": 1}
OTHERS = {"contacts": 200, "conversations": 800, "per_conversation": 1}
KEYS = {"helpdesk_conversation_pkey", "helpdesk_conversation_tenant_id_uniq"}
MOST_ROWS = 5


@pytest.fixture
def filled(tenant: Tenant, owner: User) -> Tenant:
    make_account(tenant)
    fill_with_neighbours(tenant, owner, TARGET, OTHERS, 3)
    return tenant


def opening_statement(tenant: Tenant, owner: User) -> tuple[str, Any]:
    """The opening statement of a token reply to one of the tenant's
    conversations, as sent."""
    with tenant_context(tenant):
        conversation = Conversation.objects.order_by("id")[700]
        _, raw = create_api_token(membership_of(tenant, owner), name="p", scope="admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with recording() as sent:
        client.post(
            f"{base(tenant)}/conversations/{conversation.pk}/messages/",
            {"text": "Checking now."},
            format="json",
        )
    [opening] = [entry for entry in sent if "earshot_open_api" in entry[0]]
    assert "LEFT JOIN LATERAL" in opening[0]
    return opening


@pytest.mark.parametrize("mode", MODES)
def test_the_opening_with_the_lock_reads_the_conversation_by_key(
    filled: Tenant, owner: User, mode: str
) -> None:
    plan = explained(filled, opening_statement(filled, owner), mode)

    conversation_scans = [
        node
        for node in nodes(plan)
        if node.get("Relation Name") == "helpdesk_conversation"
    ]
    assert [node.get("Index Name") in KEYS for node in conversation_scans] == [True]
    assert [(rows, scan) for rows, scan in rows_read(plan) if rows > MOST_ROWS] == []
    # The lock ran (the row was found and locked), once.
    assert [
        node["Actual Rows"] for node in nodes(plan) if node["Node Type"] == "LockRows"
    ] == [1]
