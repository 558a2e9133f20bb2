"""Inbound item → real Celery worker process (Redis broker) → Postgres → channels-redis
→ an agent's websocket, with nothing in between faked."""

import re
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from helpdesk import events, tasks
from helpdesk.models import Message
from social.connectors.base import item_to_dict
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import item
from tests.helpdesk.live import (
    live_stack_with_worker,
    open_socket,
    session_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 30.0  # seconds for the worker to pick the task up and push the event


def test_an_inbound_item_processed_by_a_worker_reaches_the_agent_live(
    tenant: Tenant, agent: User, account: SocialAccount, tmp_path: Path
) -> None:
    headers = session_headers(agent)
    inbound = item(text="Lost my bag on AA12", external_id="e2e-post-1")

    async def scenario() -> list[dict[str, Any]]:
        socket = await open_socket(tenant.slug, headers, agent)
        tasks.record_inbound_item.delay(tenant.pk, account.pk, item_to_dict(inbound))
        frames = [await socket.receive_json_from(timeout=DEADLINE) for _ in range(2)]
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()
        return frames

    log = tmp_path / "worker.log"
    with live_stack_with_worker(log):
        frames = async_to_sync(scenario)()

    with tenant_context(tenant):
        message = Message.objects.select_related("conversation").get(
            platform="sandbox", external_id="e2e-post-1"
        )
        stored = events.events_after(tenant.pk, 0)
    assert frames == stored
    assert frames[0] == {
        "type": "message.created",
        "seq": message.seq,
        "conversation_id": message.conversation_id,
        "brand_id": message.conversation.brand_id,
        "message_id": message.pk,
        "changed": {"direction": "in", "visibility": "public"},
    }
    assert (frames[1]["type"], frames[1]["seq"]) == (
        "conversation.created",
        message.seq + 1,
    )
    assert (message.text, message.account_id) == ("Lost my bag on AA12", account.pk)
    # The worker process ran it (this process only enqueued it).
    assert re.search(
        rf"Task helpdesk.record_inbound_item\[[\w-]+\] succeeded .*: {message.pk}\n",
        log.read_text(),
    )
