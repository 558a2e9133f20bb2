"""A small ASGI app for tests/helpdesk/test_web_server.py: every answer names the
worker process that gave it.

- `GET /` answers the pid;
- `GET /slow` answers the pid after half a second (a request in flight);
- a websocket gets the pid on connect and an echo of each text message.
"""

import asyncio
import os
from typing import Any

PID = str(os.getpid()).encode()


async def application(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": PID.decode()})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text", "")})
        return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    if scope["path"] == "/slow":
        await asyncio.sleep(0.5)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(PID))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PID})
