"""Outbound webhooks carry hostile customer text as written: JSON strings, never
rendered or escaped HTML (issue 13, hostile input)."""

import json

import pytest

from helpdesk.models import WebhookDelivery
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import item, receive
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    Receiver,
    WebhookQueue,
    add_endpoint,
    loopback_hooks_fixture,
    run_delivery,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db

TEXT = (
    '<img src=x onerror="window.__pwned=1"> <script>alert(1)</script> '
    "[x](javascript:alert(1)) <javascript:alert(2)> \u202eevil\u202c "
    "zero\u200bwidth \U0001f469\u200d\U0001f469\u200d\U0001f467 & &amp; \"q\" 'a'"
)


def test_an_inbound_message_goes_out_with_its_text_as_written(
    tenant: Tenant,
    owner: User,
    account: SocialAccount,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
) -> None:
    receiver = loopback_hooks()
    add_endpoint(
        tenant, owner, receiver.base_url + "/hooks", events=("message.created",)
    )
    result = receive(account, item(text=TEXT + "\x00\ud800"))
    with tenant_context(tenant):
        (delivery,) = WebhookDelivery.objects.all()

    assert run_delivery(tenant, delivery.pk) == "succeeded"

    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    sent = json.loads(request.body)
    assert sent["type"] == "message.created"
    assert sent["data"]["message"]["id"] == result.message.pk
    assert sent["data"]["message"]["text"] == TEXT + "\ufffd"
    assert b"&lt;" not in request.body
    assert b"<br>" not in request.body
