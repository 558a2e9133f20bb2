"""The framework's limit: an ASGI app that reads the request and answers 200 with
a small JSON body, doing no other work. The webhook benchmark serves it with the
same uvicorn command as Earshot and compares the two in the same run."""

from typing import Any

BODY = b'{"status": "accepted"}'
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def application(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
