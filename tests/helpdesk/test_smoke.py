from typing import Any

import pytest

from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import DeliveryQueue, item, member, receive
from tests.helpdesk.fakes import FakeConnector

pytestmark = pytest.mark.django_db


def test_inbound_then_reply_then_delivery(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    delivery_queue: DeliveryQueue,
    fake_platforms: type[FakeConnector],
    django_capture_on_commit_callbacks: Any,
) -> None:
    result = receive(account, item())
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        post_reply(
            result.conversation, membership=member(tenant, agent), text="Sorry Jo!"
        )
    assert delivery_queue.run_due() == ["sent"]
    assert [r.text for r in fake_platforms.sent] == ["Sorry Jo!"]
