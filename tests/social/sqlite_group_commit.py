"""Webhook deliveries stored on SQLite, as the demo stores them.

Run by tests/social/test_group_commit_sqlite.py in a subprocess (the suite's own
settings are PostgreSQL): `python -m tests.social.sqlite_group_commit` with
DATABASE_URL set to a sqlite:/// file and the demo's settings. Migrates, then sends
concurrent signed deliveries (two copies of one of them, and a malformed one)
through the ASGI fast path, then replays them, and prints one JSON line: the
answers of both rounds and the stored rows.
"""

import asyncio
import json
import uuid
from typing import Any

import django


def main() -> None:
    django.setup()
    import httpx
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.core.management import call_command

    from social.models import WebhookEvent
    from social.sandbox.network import sign
    from social.webhook_asgi import WebhookFastPath

    call_command("migrate", verbosity=0)
    settings.WEBHOOK_GROUP_WINDOW_MS = 5000
    settings.WEBHOOK_GROUP_MAX_ROWS = 5
    secret = settings.SOCIAL_APPS["sandbox"]["webhook_secret"]
    bodies = [
        json.dumps({"event_id": str(uuid.uuid4()), "n": n}).encode() for n in range(3)
    ]
    bodies += [bodies[0], json.dumps({"type": "post.created"}).encode()]

    async def send_all() -> list[list[Any]]:
        transport = httpx.ASGITransport(app=WebhookFastPath(get_asgi_application()))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/hooks/sandbox/",
                        content=body,
                        headers={"X-Sandbox-Signature": sign(body, secret)},
                    )
                    for body in bodies
                )
            )
        return [[answer.status_code, answer.json()] for answer in answers]

    first = asyncio.run(send_all())
    again = asyncio.run(send_all())
    rows = list(WebhookEvent.objects.order_by("pk").values_list("body", "status"))
    print(  # noqa: T201 - the parent test reads this line
        json.dumps(
            {
                "first": first,
                "again": again,
                "rows": [[bytes(body).decode(), status] for body, status in rows],
                "bodies": [body.decode() for body in bodies],
            }
        )
    )


if __name__ == "__main__":
    main()
