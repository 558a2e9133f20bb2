"""Checks that run before a server or worker process accepts work."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.core import checks
from django.core.management.base import SystemCheckError
from django.db import connections


def _serious_database_problems() -> list[str]:
    try:
        return [
            str(message)
            for message in checks.run_checks(
                databases=["default"], tags=[checks.Tags.database]
            )
            if message.is_serious()
        ]
    finally:
        connections.close_all()


def refuse_unsafe_database() -> None:
    """Run the database checks (RLS role) and stop the process when one fails.

    uvicorn's multi-worker mode imports the app inside a running event loop,
    where Django refuses database calls; the checks then run on a short-lived
    thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        errors = _serious_database_problems()
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            errors = pool.submit(_serious_database_problems).result()
    if errors:
        raise SystemCheckError("\n".join(errors))
