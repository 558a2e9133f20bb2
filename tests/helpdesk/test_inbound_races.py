"""Two workers record the same item, from a new author, at the same moment.

PostgreSQL's inbound path has no savepoint: the message is the first row it
writes (ON CONFLICT DO NOTHING) and a new author's contact goes when the
identity turns out to be another worker's. Both workers pass their lookup
before either writes (a barrier), so the second one meets both conflicts.
Invariant 2: one message, one conversation, one identity, one contact; both
callers get the same message; nothing else is counted twice.
"""

import threading
from typing import Any

import pytest
from django.db import connection

from helpdesk.models import (
    CareFact,
    Contact,
    Conversation,
    Event,
    Identity,
    Message,
    ReportRollup,
)
from helpdesk.services import inbound
from helpdesk.services.inbound import InboundResult
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpdesk.conftest import item, receive

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_same_new_item_twice_at_once_is_recorded_once(
    tenant: Tenant, account: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    barrier = threading.Barrier(2, timeout=20)
    original, original_replay = inbound._lookup_pg, inbound._replay
    first_call = threading.local()
    lookups: list[bool] = []
    replays: list[bool] = []

    def lookup(tenant_id: int, one: Any) -> Any:
        found = original(tenant_id, one)
        lookups.append(found[1] is not None)
        if not getattr(first_call, "done", False):
            first_call.done = True
            barrier.wait()  # both have looked, neither has written
        return found

    def replay(one: Any) -> Any:
        replays.append(True)
        return original_replay(one)

    monkeypatch.setattr(inbound, "_lookup_pg", lookup)
    monkeypatch.setattr(inbound, "_replay", replay)
    results: list[InboundResult] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(receive(account, item(external_id="same", author="new")))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # Neither knew the author; the second found it after its insert conflicted,
    # and its message insert conflicted too (no savepoint, nothing else written).
    assert lookups == [False, False, True]
    assert replays == [True]
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].message.pk == results[1].message.pk
    with tenant_context(tenant):
        assert Message.objects.count() == 1
        assert Conversation.objects.count() == 1
        assert Identity.objects.count() == 1
        assert Contact.objects.count() == 1
        assert CareFact.objects.count() == 1
        assert sum(ReportRollup.objects.values_list("inbound", flat=True)) == 1
        conversation = Conversation.objects.get()
        assert conversation.customer_message_count == 1
        assert list(Event.objects.order_by("seq").values_list("type", flat=True)) == [
            "message.created",
            "conversation.created",
        ]
