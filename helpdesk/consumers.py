"""`InboxConsumer`: the live stream of one workspace at /ws/t/<tenant_slug>/.

It authenticates (session), gates (membership, checked inside the tenant's own
context), joins the tenant and user groups, forwards events, and sends what a
reconnecting client missed (`?after=<seq>`). Clients send only ephemeral signals:
heartbeats (presence) and viewing/typing on a conversation. No business logic here.

Presence is for agents working the inbox: a page that only listens (the spike
banner, an incident's page) connects with `?presence=off`; its socket gets every
event and its heartbeats still check the membership, but it never marks the agent
online or, when it closes, offline.
"""

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from helpdesk import events, metrics
from helpdesk.models import Conversation
from helpdesk.presence import presence_store
from tenants.context import tenant_context, tenant_db
from tenants.models import Membership, Tenant, User

# The consumer kind of earshot_websocket_connections (never a tenant label).
METRICS_KIND = "inbox"
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
SIGNALS = {"viewing", "typing", "idle"}
# Group messages the consumer only forwards to its socket (`event_message`,
# `event_batch`): their handlers touch no database.
FORWARDS = frozenset({"event.message", "event.batch"})


def _membership(user_id: int, slug: str) -> tuple[int, int] | None:
    tenant = Tenant.objects.filter(slug=slug, status=Tenant.Status.ACTIVE).first()
    if tenant is None:
        return None
    with tenant_context(tenant):
        membership = Membership.objects.filter(user_id=user_id).first()
        if membership is None:
            return None
        return tenant.pk, membership.pk


def _still_member(membership_id: int) -> bool:
    return Membership.objects.filter(pk=membership_id).exists()


def _conversation_exists(conversation_id: int) -> bool:
    return Conversation.objects.filter(pk=conversation_id).exists()


class InboxConsumer(AsyncJsonWebsocketConsumer):
    tenant_id: int
    user_id: int
    membership_id: int
    joined: list[str]
    counted = False
    presence = True

    async def connect(self) -> None:
        self.joined = []
        user: User = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["tenant_slug"]
        found = await database_sync_to_async(_membership)(user.pk, slug)
        if found is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.tenant_id, self.membership_id = found
        self.user_id = user.pk
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.presence = query.get("presence", [""])[0] != "off"
        for group in (
            events.inbox_group(self.tenant_id),
            events.user_group(self.tenant_id, user.pk),
        ):
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        await self.accept()
        self.counted = True
        metrics.websocket_opened(METRICS_KIND)
        await self._catch_up()
        await self._heartbeat()

    async def _catch_up(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = query.get("after", [None])[0]
        if after is None or not after.isdigit():
            return
        missed = await tenant_db(self.tenant_id, events.events_after)(
            self.tenant_id, int(after)
        )
        for payload in missed:
            await self.send_json(payload)
        await self.send_json({"type": "caught_up", "count": len(missed)})

    async def _heartbeat(self) -> None:
        if not self.presence:
            return
        came_online = await database_sync_to_async(presence_store().touch)(
            self.tenant_id, self.user_id
        )
        if came_online:
            await self._signal(
                {"type": "presence", "user_id": self.user_id, "state": "online"}
            )

    async def _signal(self, payload: dict[str, Any]) -> None:
        await self.channel_layer.group_send(
            events.inbox_group(self.tenant_id),
            {"type": "event.message", "event": payload},
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "heartbeat":
            if not await tenant_db(self.tenant_id, _still_member)(self.membership_id):
                await self.close(code=CLOSE_FORBIDDEN)
                return
            await self._heartbeat()
            return
        if kind in SIGNALS:
            conversation_id = content.get("conversation_id")
            if not isinstance(conversation_id, int) or not await tenant_db(
                self.tenant_id, _conversation_exists
            )(conversation_id):
                await self.send_json({"type": "error", "error": "no such conversation"})
                return
            await self._signal(
                {
                    "type": "typing" if kind == "typing" else "viewing",
                    "user_id": self.user_id,
                    "conversation_id": conversation_id,
                    "state": kind,
                }
            )
            return
        await self.send_json({"type": "error", "error": "unknown message type"})

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch, without its database-connection cleanup for the
        messages the consumer only forwards.

        Channels runs `aclose_old_connections()` before every handler: a hop to
        the one thread that runs sync code, made for each message on each socket,
        one socket after another. For an event fanned out to 2,000 sockets that
        hop was 39% of the web process's samples (tests/perf/test_fanout.py). The
        forwarding handlers read no database; every handler that does reaches it
        through `database_sync_to_async` (`tenant_db` too), which closes old
        connections around its own call, so those keep Channels' path."""
        if message["type"] in FORWARDS:
            if message["type"] == "event.message":
                await self.event_message(message)
            else:
                await self.event_batch(message)
            return
        await super().dispatch(message)

    async def event_message(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def event_batch(self, message: dict[str, Any]) -> None:
        # A batch of durable events published as one message; one frame each.
        for event in message["events"]:
            await self.send_json(event)

    async def member_removed(self, message: dict[str, Any]) -> None:
        await self.close(code=CLOSE_FORBIDDEN)

    async def disconnect(self, code: int) -> None:
        if self.counted:
            self.counted = False
            metrics.websocket_closed(METRICS_KIND)
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.joined and self.presence:
            await database_sync_to_async(presence_store().leave)(
                self.tenant_id, self.user_id
            )
            await self._signal(
                {"type": "presence", "user_id": self.user_id, "state": "offline"}
            )
