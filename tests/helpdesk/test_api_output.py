"""helpdesk/api_output.py: serializers built once per thread give `.data`'s output."""

import threading
from typing import Any

import pytest

from helpdesk.api import ConversationOutput, MessageOutput
from helpdesk.api_output import output, outputs
from helpdesk.models import Message
from helpdesk.selectors import conversation_rows, conversation_tags
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, receive

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_output_is_that_of_a_fresh_serializer(
    tenant: Tenant, owner: User, account: SocialAccount
) -> None:
    receive(account, item(text="Where is my bag?"))
    receive(account, item(text="Refund please", author="cust-2"))
    with tenant_context(tenant):
        rows = list(conversation_rows(membership_of(tenant, owner)).order_by("id"))
        messages = list(
            Message.objects.select_related("author_identity").order_by("id")
        )
        tags = conversation_tags([row.pk for row in rows])

        fresh_rows: Any = ConversationOutput(
            rows, many=True, context={"tags": tags}
        ).data
        fresh_one = MessageOutput(messages[0]).data
        fresh_many: Any = MessageOutput(messages, many=True).data
        for _ in range(2):  # the second time with the fields built the first time
            assert outputs(ConversationOutput, rows, context={"tags": tags}) == (
                fresh_rows
            )
            assert output(MessageOutput, messages[0]) == fresh_one
            assert outputs(MessageOutput, messages) == fresh_many
    assert len(fresh_rows) == 2
    assert fresh_one["text"] == "Where is my bag?"


def test_each_thread_builds_its_own_and_no_context_is_kept() -> None:
    seen: list[Any] = []

    class Probe(ConversationOutput):
        def to_representation(self, instance: Any) -> Any:
            seen.append((threading.current_thread(), id(self), dict(self.context)))
            return {}

    output(Probe, object(), context={"tags": {1: ["a"]}})
    output(Probe, object())
    worker = threading.Thread(target=lambda: output(Probe, object()))
    worker.start()
    worker.join()

    (main, first, ctx1), (_, second, ctx2), (other, third, ctx3) = seen
    assert first == second != third
    assert other is worker
    assert main is not worker
    assert (ctx1, ctx2, ctx3) == ({"tags": {1: ["a"]}}, {}, {})
