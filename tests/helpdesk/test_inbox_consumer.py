"""InboxConsumer through helpdesk.asgi.application over channels-redis pub/sub.

Clients log in with django.test.Client and present the session cookie and an Origin
header, so the real Origin check (helpdesk/websocket_guard.py) and
AuthMiddlewareStack run.
"""

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.test import override_settings

from helpdesk import events
from helpdesk.consumers import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from helpdesk.presence import presence_store
from helpdesk.services.inbound import InboundResult
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tenants.services import remove_member
from tests.helpdesk.conftest import item, make_account, member, receive
from tests.helpdesk.live import (
    REDIS_LAYERS,
    WAIT,
    asgi_application,
    inbox_socket,
    online,
    open_socket,
    session_headers,
)
from tests.sql_audit import SqlAuditor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def live_stack() -> Iterator[None]:
    """channels-redis pub/sub, and the ASGI app loaded (its import checks the DB)."""
    with override_settings(CHANNEL_LAYERS=REDIS_LAYERS):
        asgi_application()
        yield


def stored_events(tenant: Tenant, after: int = 0) -> list[dict[str, Any]]:
    with tenant_context(tenant):
        return events.events_after(tenant.pk, after)


def message_created(result: InboundResult, seq: int) -> dict[str, Any]:
    return {
        "type": "message.created",
        "seq": seq,
        "conversation_id": result.conversation.pk,
        "brand_id": result.conversation.brand_id,
        "message_id": result.message.pk,
        "changed": {"direction": "in", "visibility": "public"},
    }


async def refused(headers: list[tuple[bytes, bytes]], slug: str) -> Any:
    """The close code of a refused handshake: accepted only to be closed at once
    with its 44xx reason (a close before accept reaches browsers as 1006)."""
    socket = inbox_socket(slug, headers)
    try:
        assert await socket.connect(timeout=WAIT) == (True, None)
        closing = await socket.receive_output(timeout=WAIT)
        assert closing["type"] == "websocket.close"
        return closing["code"]
    finally:
        await socket.disconnect()


def test_anonymous_is_refused(tenant: Tenant) -> None:
    headers = session_headers(None)

    assert async_to_sync(refused)(headers, tenant.slug) == CLOSE_UNAUTHENTICATED
    assert presence_store().online(tenant.pk) == set()


def test_member_of_another_tenant_is_refused_like_a_missing_workspace(
    tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    headers = session_headers(outsider)

    assert async_to_sync(refused)(headers, tenant.slug) == CLOSE_NOT_FOUND
    assert async_to_sync(refused)(headers, "no-such-workspace") == CLOSE_NOT_FOUND
    assert presence_store().online(tenant.pk) == set()


@pytest.mark.parametrize("origin", [b"http://evil.example", None])
def test_foreign_or_missing_origin_is_refused(
    tenant: Tenant, agent: User, origin: bytes | None
) -> None:
    headers = session_headers(agent, origin=origin)

    assert async_to_sync(refused)(headers, tenant.slug) == CLOSE_FORBIDDEN
    assert presence_store().online(tenant.pk) == set()


def test_message_created_is_pushed_only_after_commit(
    tenant: Tenant, agent: User, account: SocialAccount, sql_audit: SqlAuditor
) -> None:
    headers = session_headers(agent)
    inbound = item(text="Where is my bag?")
    recorded, commit = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def write() -> None:
        # Another thread holds the transaction open, so this test's thread stays free
        # for the consumer (channels runs its DB hops there).
        try:
            with connection.execute_wrapper(sql_audit), tenant_context(tenant):
                outcome["result"] = receive(account, inbound)
                recorded.set()
                commit.wait(WAIT)
        finally:
            connection.close()

    async def scenario() -> tuple[bool, list[dict[str, Any]]]:
        socket = await open_socket(tenant.slug, headers, agent)
        writer = threading.Thread(target=write)
        writer.start()
        assert await asyncio.to_thread(recorded.wait, WAIT)
        silent = await socket.receive_nothing(timeout=0.5)
        commit.set()
        await asyncio.to_thread(writer.join, WAIT)
        frames = [await socket.receive_json_from(timeout=WAIT) for _ in range(2)]
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()
        return silent, frames

    silent_before_commit, frames = async_to_sync(scenario)()

    assert silent_before_commit
    result: InboundResult = outcome["result"]
    assert result.created
    stored = stored_events(tenant)
    seq = stored[0]["seq"]
    assert frames == stored
    assert frames[0] == message_created(result, seq)
    assert frames[1]["type"] == "conversation.created"
    assert frames[1]["seq"] == seq + 1
    assert frames[1]["conversation_id"] == result.conversation.pk


def test_reconnect_with_after_gets_exactly_what_was_missed_then_caught_up(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    other_tenant: Tenant,
) -> None:
    headers = session_headers(agent)
    other_account = make_account(other_tenant, handle="globex")
    first = item(author="cust-1", external_id="post-1")

    async def before_gap() -> list[dict[str, Any]]:
        socket = await open_socket(tenant.slug, headers, agent)
        await sync_to_async(receive)(account, first)
        frames = [await socket.receive_json_from(timeout=WAIT) for _ in range(2)]
        await socket.disconnect()
        return frames

    seen = async_to_sync(before_gap)()
    last_seen = seen[-1]["seq"]
    # While the agent is away: a new conversation, a follow-up in the first thread,
    # and activity in another workspace.
    second = receive(account, item(author="cust-2", handle="sam"))
    follow_up = receive(account, item(author="cust-1", thread="post-1"))
    receive(other_account, item(author="cust-9"))

    # With `after`, the catch-up comes before the presence announcement.
    async def after_gap() -> list[dict[str, Any]]:
        socket = inbox_socket(tenant.slug, headers, after=last_seen)
        assert await socket.connect(timeout=WAIT) == (True, None)
        frames = [await socket.receive_json_from(timeout=WAIT) for _ in range(6)]
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()
        return frames

    frames = async_to_sync(after_gap)()

    missed = stored_events(tenant, last_seen)
    assert [(f["type"], f["seq"]) for f in missed] == [
        ("message.created", last_seen + 1),
        ("conversation.created", last_seen + 2),
        ("message.created", last_seen + 3),
        ("conversation.updated", last_seen + 4),
    ]
    assert frames == [
        *missed,
        {"type": "caught_up", "count": 4},
        online(agent),
    ]
    assert frames[0] == message_created(second, last_seen + 1)
    assert frames[2] == message_created(follow_up, last_seen + 3)
    assert follow_up.conversation.pk == seen[0]["conversation_id"]


def test_removed_member_is_disconnected_and_cannot_come_back(
    tenant: Tenant, admin: User, agent: User
) -> None:
    headers = session_headers(agent)

    async def scenario() -> tuple[dict[str, Any], Any]:
        socket = await open_socket(tenant.slug, headers, agent)

        def remove() -> None:
            with tenant_context(tenant):
                remove_member(member(tenant, admin), target=member(tenant, agent))

        await sync_to_async(remove)()
        closed = await socket.receive_output(timeout=WAIT)
        await socket.disconnect()
        return closed, await refused(headers, tenant.slug)

    closed, again = async_to_sync(scenario)()

    assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    assert again == CLOSE_NOT_FOUND
    assert presence_store().online(tenant.pk) == set()


@pytest.mark.parametrize("signal", ["viewing", "typing"])
def test_signal_about_another_tenants_conversation_is_refused_and_not_broadcast(
    tenant: Tenant,
    admin: User,
    agent: User,
    account: SocialAccount,
    other_tenant: Tenant,
    outsider: User,
    signal: str,
) -> None:
    own = receive(account, item()).conversation
    foreign = receive(make_account(other_tenant, handle="globex"), item()).conversation
    admin_headers, agent_headers = session_headers(admin), session_headers(agent)
    outsider_headers = session_headers(outsider)

    async def scenario() -> dict[str, Any]:
        watcher = await open_socket(tenant.slug, admin_headers, admin)
        stranger = await open_socket(other_tenant.slug, outsider_headers, outsider)
        socket = await open_socket(tenant.slug, agent_headers, agent)
        assert await watcher.receive_json_from(timeout=WAIT) == online(agent)
        replies = []
        for conversation_id in (foreign.pk, str(own.pk), None):
            await socket.send_json_to(
                {"type": signal, "conversation_id": conversation_id}
            )
            replies.append(await socket.receive_json_from(timeout=WAIT))
        refused_quietly = (
            await watcher.receive_nothing(timeout=0.5)
            and await stranger.receive_nothing(timeout=0.1)
            and await socket.receive_nothing(timeout=0.1)
        )
        # The same signal about the tenant's own conversation does go out.
        await socket.send_json_to({"type": signal, "conversation_id": own.pk})
        broadcast: dict[str, Any] = await watcher.receive_json_from(timeout=WAIT)
        assert await socket.receive_json_from(timeout=WAIT) == broadcast
        assert await stranger.receive_nothing(timeout=0.3)
        for each in (socket, watcher, stranger):
            await each.disconnect()
        error = {"type": "error", "error": "no such conversation"}
        assert replies == [error, error, error]
        assert refused_quietly
        return broadcast

    broadcast = async_to_sync(scenario)()

    assert broadcast == {
        "type": signal,
        "user_id": agent.pk,
        "conversation_id": own.pk,
        "state": signal,
    }


def test_connected_agent_is_online_until_it_leaves(
    tenant: Tenant, agent: User, other_tenant: Tenant
) -> None:
    headers = session_headers(agent)

    async def scenario() -> tuple[set[int], set[int]]:
        socket = await open_socket(tenant.slug, headers, agent)
        while_connected = await sync_to_async(presence_store().online)(tenant.pk)
        elsewhere = await sync_to_async(presence_store().online)(other_tenant.pk)
        await socket.disconnect()
        assert elsewhere == set()
        return while_connected, presence_store().online(tenant.pk)

    while_connected, after_leaving = async_to_sync(scenario)()

    assert while_connected == {agent.pk}
    assert after_leaving == set()


def test_forwarded_events_skip_channels_connection_cleanup(
    tenant: Tenant, agent: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event the consumer only forwards reaches the socket without Channels'
    per-message database cleanup (a thread hop per socket); a message that may
    read the database (a heartbeat) still gets it."""
    import channels.consumer

    cleanups: list[str] = []
    real = channels.consumer.aclose_old_connections

    async def counted() -> None:
        cleanups.append("cleanup")
        await real()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    headers = session_headers(agent)
    one = {"type": "note.created", "seq": 1, "conversation_id": 7}
    two = {"type": "note.created", "seq": 2, "conversation_id": 8}

    async def scenario() -> tuple[list[Any], int, int]:
        socket = await open_socket(tenant.slug, headers, agent)
        before = len(cleanups)
        group = events.inbox_group(tenant.pk)
        layer = get_channel_layer()
        await layer.group_send(group, {"type": "event.message", "event": one})
        await layer.group_send(group, {"type": "event.batch", "events": [one, two]})
        frames = [await socket.receive_json_from(timeout=WAIT) for _ in range(3)]
        forwarded = len(cleanups) - before
        await socket.send_json_to({"type": "heartbeat"})
        assert await socket.receive_nothing(timeout=0.3)
        received = len(cleanups) - before - forwarded
        await socket.disconnect()
        return frames, forwarded, received

    frames, forwarded, received = async_to_sync(scenario)()

    assert frames == [one, one, two]
    assert forwarded == 0
    assert received == 1
