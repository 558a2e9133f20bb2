"""The Redis databases one test process uses, so that test processes running at once
(pytest-xdist's workers, or several engineers' runs on one machine) never flush or
steal each other's keys and tasks.

Roles:
- `cache`: the cache, rate limits and the channel layer of live tests (REDIS_URL);
- `live_broker`: the Celery broker of the tests that start a real worker process;
- `browser_broker` and `browser_layer`: the browser journeys' server and worker;
- `scratch`: a broker a test flushes and fills on its own.

`make test` runs two xdist workers, gw0 and gw1, each with its own set on the
default Redis. Any other run uses gw0's set, except that a REDIS_URL given in the
environment (kept as EARSHOT_TEST_REDIS_URL by tests/settings.py) is its cache, and
when that URL names another Redis server (e.g. one started with `--databases 64`),
the other roles follow it at fixed offsets; a REDIS_URL whose database leaves no
room for them (above 17 on a 64-database Redis) stops the run with a usage error
rather than pointing a role at a database that does not exist.
"""

import os
from typing import Literal
from urllib.parse import urlsplit

Role = Literal["cache", "live_broker", "browser_broker", "browser_layer", "scratch"]

DEFAULT_HOST = "redis://127.0.0.1:6379"
# Databases of the default Redis (16 of them) per xdist worker.
WORKER_SETS: dict[str, dict[Role, int]] = {
    "gw0": {
        "cache": 15,
        "live_broker": 14,
        "browser_broker": 12,
        "browser_layer": 13,
        "scratch": 9,
    },
    "gw1": {
        "cache": 11,
        "live_broker": 10,
        "browser_broker": 7,
        "browser_layer": 8,
        "scratch": 6,
    },
}
# On a Redis with 64 databases: offsets from the database REDIS_URL names.
OFFSETS: dict[Role, int] = {
    "cache": 0,
    "live_broker": 20,
    "browser_broker": 40,
    "browser_layer": 41,
    "scratch": 46,
}
# Databases of that Redis (`--databases 64`): 0 to 63.
DATABASES = 64
HIGHEST_BASE = DATABASES - 1 - max(OFFSETS.values())
ENV_OVERRIDES: dict[Role, str] = {
    "browser_broker": "EARSHOT_BROWSER_BROKER_URL",
    "browser_layer": "EARSHOT_BROWSER_REDIS_URL",
}


def test_worker() -> str:
    """This test process's worker name: EARSHOT_TEST_WORKER, which `make test` gives
    each xdist worker when it starts (xdist's own PYTEST_XDIST_WORKER arrives after
    pytest-django has imported the settings), else PYTEST_XDIST_WORKER."""
    return os.environ.get("EARSHOT_TEST_WORKER") or os.environ.get(
        "PYTEST_XDIST_WORKER", ""
    )


def redis_url(role: Role) -> str:
    """The URL of this process's Redis database for `role`."""
    override = ENV_OVERRIDES.get(role)
    if override and os.environ.get(override):
        return os.environ[override]
    worker = test_worker()
    if worker in WORKER_SETS:
        return f"{DEFAULT_HOST}/{WORKER_SETS[worker][role]}"
    explicit = os.environ.get("EARSHOT_TEST_REDIS_URL", "")
    if explicit:
        parts = urlsplit(explicit)
        if role == "cache":
            return explicit
        if parts.port not in (None, 6379):
            base = int(parts.path.strip("/") or 0)
            return f"redis://{parts.netloc}/{offset_database(base, role)}"
    return f"{DEFAULT_HOST}/{WORKER_SETS['gw0'][role]}"


def layer_prefix(url: str) -> str:
    """The pub/sub channel layer's prefix for a stack on the Redis database `url`.

    Redis pub/sub channels are not per database: without it, stacks on different
    databases of one server (the xdist workers, engineers' runs at once) hear each
    other's groups, which share names (the first tenant is 1 in every test
    database). A page's socket then took a foreign event's higher sequence as
    seen, and dropped its own workspace's next event as a replay (the spreading
    browser test's flag that never came, 1 run in 8)."""
    parts = urlsplit(url)
    return f"asgi-{parts.port or 6379}-{parts.path.strip('/') or 0}"


def offset_database(base: int, role: Role) -> int:
    """The database of `role` when REDIS_URL names database `base` of a Redis with
    DATABASES databases; a usage error when it would not exist."""
    if not 0 <= base <= HIGHEST_BASE:
        import pytest  # here: the live servers import this module too

        raise pytest.UsageError(
            f"REDIS_URL names database {base}: the test roles sit at offsets up to "
            f"+{max(OFFSETS.values())} on a Redis of {DATABASES} databases, so its "
            f"database must be 0 to {HIGHEST_BASE} (e.g. redis://127.0.0.1:6380/8)"
        )
    return base + OFFSETS[role]
