"""The fan-out benchmark's baselines (tests/perf/test_fanout.py): a bare Channels
consumer that joins one group and forwards what the group gets, served by the same
web server command as Earshot, on the same channel layer (tests.settings with
EARSHOT_TEST_EAGER=0: channels-redis pub/sub on REDIS_URL). No session, Origin
check or database: what Channels and the layer cost on their own.

HTTP answers 200 to anything (the server's readiness check polls /healthz).
"""

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from channels.consumer import get_handler_name  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "fanout-bare"
PATH = "/ws/bare/"
DIRECT_GROUP = "fanout-bare-direct"
DIRECT_PATH = "/ws/bare-direct/"


# channels has no type hints (its base is Any to mypy).
class BareConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    group = GROUP

    async def connect(self) -> None:
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def event_message(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)


class DirectConsumer(BareConsumer):
    """BareConsumer without Channels' check of the database connections before
    each message: AsyncConsumer.dispatch awaits aclose_old_connections(), a
    sync_to_async hop to close_old_connections, before every handler, though
    these handlers use no database. The benchmark shows what that hop costs."""

    group = DIRECT_GROUP

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


async def healthy(scope: Any, receive: Any, send: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


application = ProtocolTypeRouter(
    {
        "http": healthy,
        "websocket": URLRouter(
            [
                path(PATH.lstrip("/"), BareConsumer.as_asgi()),
                path(DIRECT_PATH.lstrip("/"), DirectConsumer.as_asgi()),
            ]
        ),
    }
)
