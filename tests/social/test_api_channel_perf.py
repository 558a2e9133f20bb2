"""An API-channel push takes the tenant's event counter as late as it can.

The counter row (helpdesk_eventcounter) stays locked from the sequence allocation
to the commit, and every write of the workspace waits for it; so the push inserts
its message (dedupe) without sequences, works out everything that does not need
them (the presence read of routing, the incident-rule cache read, the
conversation's changes), and allocates them in its trailing write statement,
which sets the message's seq, right before COMMIT.
"""

from typing import Any

import pytest

from helpdesk.models import CareFact, Conversation, Event, Message
from helpdesk.services import inbound
from helpdesk.services.assignment import route_inbound
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.api_clients import open_api_channel, push, token_client
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def channel(tenant: Tenant, owner: User) -> SocialAccount:
    return open_api_channel(tenant, owner)


def test_the_counter_is_taken_after_the_reads_and_before_the_last_write(
    tenant: Tenant,
    owner: User,
    channel: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = token_client(tenant, owner, "admin")
    assert push(client, tenant, channel, 0).status_code == 201  # warm caches
    calls: list[tuple[str, int]] = []
    rules = inbound.incident_rules_open

    def routing(conversation: Any, *, opened: bool) -> Any:
        calls.append(("route_inbound", len(seen)))
        return route_inbound(conversation, opened=opened)

    def incident_rules(tenant_id: int) -> bool:
        calls.append(("incident_rules_open", len(seen)))
        return rules(tenant_id)

    monkeypatch.setattr(inbound, "route_inbound", routing)
    monkeypatch.setattr(inbound, "incident_rules_open", incident_rules)
    with count_statements() as seen:
        response = push(client, tenant, channel, 1)
    assert response.status_code == 201, response.content
    counter = [n for n, sql in enumerate(seen.sql) if "helpdesk_eventcounter" in sql]
    # The new author with the message, then the counter with the rest, then
    # COMMIT.
    assert counter == [len(seen) - 2], seen.listing()
    assert seen.sql[-3].startswith("WITH c AS (INSERT INTO helpdesk_contact")
    assert "m AS (INSERT INTO helpdesk_message" in seen.sql[-3], seen.listing()
    assert 'UPDATE "helpdesk_message" SET "seq"' in seen.sql[-2], seen.listing()
    assert 'INSERT INTO "helpdesk_event"' in seen.sql[-2], seen.listing()
    assert seen.sql[-1] == "COMMIT", seen.listing()
    # Both reads ran before the counter's statement was sent.
    assert [name for name, _ in calls] == ["route_inbound", "incident_rules_open"]
    assert all(sent <= counter[0] for _, sent in calls), (calls, seen.listing())
    body = response.json()
    with tenant_context(tenant):
        message = Message.objects.get(pk=body["message_id"])
        conversation = Conversation.objects.get(pk=body["conversation_id"])
        assert conversation.customer_message_count == 1
        assert CareFact.objects.filter(conversation=conversation).count() == 1
        events = list(
            Event.objects.filter(seq__gte=message.seq)
            .order_by("seq")
            .values_list("seq", "type")
        )
    assert events == [
        (message.seq, "message.created"),
        (message.seq + 1, "conversation.created"),
    ]
