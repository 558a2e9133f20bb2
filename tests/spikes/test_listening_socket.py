"""The spike banner's socket on pages other than the inbox (`?presence=off`): it
hears the workspace's events and its heartbeats still check the membership, but it
never marks the agent online, nor offline when it closes (helpdesk/consumers.py).
Presence is for agents working the inbox."""

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import override_settings

from helpdesk import events
from helpdesk.consumers import CLOSE_FORBIDDEN
from helpdesk.presence import presence_store
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tenants.services import remove_member
from tests.helpdesk.conftest import member
from tests.helpdesk.live import (
    REDIS_LAYERS,
    WAIT,
    asgi_application,
    open_socket,
    session_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def live_stack() -> Iterator[None]:
    with override_settings(CHANNEL_LAYERS=REDIS_LAYERS):
        asgi_application()
        yield


def listening_socket(slug: str, headers: list[tuple[bytes, bytes]]) -> Any:
    path = f"/ws/t/{slug}/?after=0&presence=off"
    return WebsocketCommunicator(asgi_application(), path, headers=headers)


def online(tenant: Tenant) -> set[int]:
    return presence_store().online(tenant.pk)


def test_a_listening_socket_never_marks_the_agent_online(
    tenant: Tenant, agent: User
) -> None:
    headers = session_headers(agent)

    async def scenario() -> tuple[list[Any], set[int], set[int], bool]:
        socket = listening_socket(tenant.slug, headers)
        assert await socket.connect(timeout=WAIT) == (True, None)
        frames = [await socket.receive_json_from(timeout=WAIT)]
        on_connect = await sync_to_async(online)(tenant)
        await socket.send_json_to({"type": "heartbeat"})
        # The heartbeat is answered by nothing; an unknown type is, so its error
        # comes after the heartbeat has been handled.
        await socket.send_json_to({"type": "ping"})
        frames.append(await socket.receive_json_from(timeout=WAIT))
        after_heartbeat = await sync_to_async(online)(tenant)
        quiet = await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()
        return frames, on_connect, after_heartbeat, quiet

    frames, on_connect, after_heartbeat, quiet = async_to_sync(scenario)()

    # The catch-up answer, and no presence announcement.
    assert frames == [
        {"type": "caught_up", "count": 0},
        {"type": "error", "error": "unknown message type"},
    ]
    assert on_connect == set()
    assert after_heartbeat == set()
    assert quiet is True


def test_closing_a_listening_socket_leaves_the_inbox_agent_online(
    tenant: Tenant, agent: User
) -> None:
    headers = session_headers(agent)

    async def scenario() -> tuple[set[int], list[Any], set[int]]:
        inbox = await open_socket(tenant.slug, headers, agent)
        banner = listening_socket(tenant.slug, headers)
        assert await banner.connect(timeout=WAIT) == (True, None)
        assert await banner.receive_json_from(timeout=WAIT) == {
            "type": "caught_up",
            "count": 0,
        }
        await banner.disconnect()
        still = await sync_to_async(online)(tenant)
        # The inbox hears no "offline" of its own agent: the next frame is the
        # event sent after the banner closed.
        await sync_to_async(push)(tenant)
        heard = [await inbox.receive_json_from(timeout=WAIT)]
        await inbox.disconnect()
        return still, heard, await sync_to_async(online)(tenant)

    still, heard, after_inbox_left = async_to_sync(scenario)()

    assert still == {agent.pk}
    assert heard == [{"type": "marker"}]
    assert after_inbox_left == set()


def push(tenant: Tenant) -> None:
    events.send_to_group(events.inbox_group(tenant.pk), {"type": "marker"})


def test_a_listening_socket_hears_events_and_closes_for_a_removed_member(
    tenant: Tenant, owner: User, agent: User
) -> None:
    headers = session_headers(agent)

    def remove() -> None:
        with tenant_context(tenant):
            remove_member(member(tenant, owner), target=member(tenant, agent))

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        socket = listening_socket(tenant.slug, headers)
        assert await socket.connect(timeout=WAIT) == (True, None)
        await socket.receive_json_from(timeout=WAIT)  # caught_up
        await sync_to_async(push)(tenant)
        event = await socket.receive_json_from(timeout=WAIT)
        await sync_to_async(remove)()
        closed = await socket.receive_output(timeout=WAIT)
        return event, closed

    event, closed = async_to_sync(scenario)()

    assert event == {"type": "marker"}
    assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
