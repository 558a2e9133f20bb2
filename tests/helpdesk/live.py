"""The live stack for tests and benchmarks: websocket clients through the real ASGI
application (Origin check, session auth, routing) over channels-redis pub/sub, and a
real `celery worker` process on a Redis broker.

Test bodies are sync functions that run their async part with `async_to_sync`: the
consumer's `database_sync_to_async` calls then run on the test's own thread and
connection, so the SQL auditor sees every query the consumer makes.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from helpdesk.celery import app as celery_app
from tenants.models import User
from tests.conftest import login
from tests.redis_dbs import layer_prefix, redis_url

ROOT = Path(__file__).resolve().parents[2]
REDIS_LAYER_URL = redis_url("cache")
BROKER_URL = redis_url("live_broker")
REDIS_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_LAYER_URL], "prefix": layer_prefix(REDIS_LAYER_URL)},
    }
}
ORIGIN = b"http://testserver"
WAIT = 5.0  # seconds a test waits for a frame that must come


def asgi_application() -> Any:
    """helpdesk.asgi.application, imported late: importing it runs the DB checks."""
    from helpdesk.asgi import application

    return application


def session_headers(
    user: User | None, *, origin: bytes | None = ORIGIN
) -> list[tuple[bytes, bytes]]:
    """Headers of a browser tab: its Origin and, when logged in, the session cookie."""
    headers = [(b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        name = settings.SESSION_COOKIE_NAME
        session = login(user).cookies[name].value
        headers.append((b"cookie", f"{name}={session}".encode()))
    return headers


def inbox_socket(
    slug: str, headers: list[tuple[bytes, bytes]], *, after: int | None = None
) -> Any:
    path = f"/ws/t/{slug}/" + ("" if after is None else f"?after={after}")
    return WebsocketCommunicator(asgi_application(), path, headers=headers)


def online(user: User) -> dict[str, Any]:
    return {"type": "presence", "user_id": user.pk, "state": "online"}


async def open_socket(
    slug: str, headers: list[tuple[bytes, bytes]], user: User, **kwargs: Any
) -> Any:
    """Connect, and read the user's own presence announcement."""
    socket = inbox_socket(slug, headers, **kwargs)
    assert await socket.connect(timeout=WAIT) == (True, None)
    assert await socket.receive_json_from(timeout=WAIT) == online(user)
    return socket


RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


def rabbitmq_vhost() -> str:
    """A fresh RabbitMQ vhost of this test process's own (per xdist worker), empty;
    returns its broker URL."""
    vhost = f"earshot_test_{os.environ.get('PYTEST_XDIST_WORKER') or 'main'}"

    def ctl(*args: str) -> None:
        rabbitmqctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        subprocess.run([rabbitmqctl, "-q", *args], check=False, capture_output=True)

    ctl("delete_vhost", vhost)
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return RABBITMQ_URL + vhost


@contextmanager
def real_broker(url: str = BROKER_URL) -> Iterator[None]:
    """Send tasks from this process to `url` instead of running them eagerly."""
    conf = celery_app.conf
    saved = {key: conf[key] for key in ("task_always_eager", "broker_url")}
    _drop_broker_pools()
    conf.update(task_always_eager=False, broker_url=url)
    try:
        yield
    finally:
        _drop_broker_pools()
        conf.update(saved)


@contextmanager
def empty_scratch_broker() -> Iterator[redis.Redis]:
    """A real Redis broker on this process's scratch database, empty before and
    after; yields a client of it to read the queued messages."""
    url = redis_url("scratch")
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        with real_broker(url):
            yield client
    finally:
        client.flushdb()


def count_redis_clients(monkeypatch: pytest.MonkeyPatch) -> list[redis.Redis]:
    """From now on, every redis.Redis built in this process, in order."""
    made: list[redis.Redis] = []
    real_init = redis.Redis.__init__

    def counted_init(self: redis.Redis, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counted_init)
    return made


def _drop_broker_pools() -> None:
    """Forget pooled broker connections, so the next send uses the current URL."""
    from kombu import pools

    app: Any = celery_app
    # kombu keeps pools in a global registry keyed by connection: closing only the
    # app's pool would leave that closed pool registered for the next caller.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


CELERY = str(Path(sys.executable).with_name("celery"))


def web_server_command(port: int, *, workers: int = 1) -> list[str]:
    """Earshot's web server (`python -m helpdesk.web_server`, uvicorn workers behind
    one acceptor, as the Procfile runs it) on 127.0.0.1:`port`, warnings only."""
    return [
        sys.executable,
        "-m",
        "helpdesk.web_server",
        "helpdesk.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def celery_worker_command(
    name: str,
    *,
    pool: str = "solo",
    concurrency: int = 1,
    queue: str | None = None,
    quiet: bool = True,
) -> list[str]:
    """`celery -A helpdesk worker` named `name`; quiet: without gossip, mingle and
    heartbeats (production keeps them on)."""
    command = [
        CELERY,
        "-A",
        "helpdesk",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "-l",
        "INFO",
    ]
    if queue is not None:
        command += ["-Q", queue]
    if quiet:
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return command


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def worker_subprocess(
    env: dict[str, str],
    log: Path,
    *,
    name: str,
    ready_timeout: float = 30.0,
    pool: str = "solo",
    concurrency: int = 1,
    quiet: bool = True,
    script: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A `celery worker -P <pool>` process with `env`, logging to `log`.

    quiet=False keeps gossip, mingle and heartbeats on, as `celery worker` runs in
    production (their fanout queues are part of what a broker outage disturbs).
    `script`: Python run instead of the `celery` command, with sys.argv[1:] the
    worker's arguments from "worker" on (it sets up what the test needs, then calls
    `app.worker_main(sys.argv[1:])`).
    Waits until it is ready; terminates it (killed after 10 s) when the block ends.
    """
    command = celery_worker_command(
        f"{name}-{os.getpid()}", pool=pool, concurrency=concurrency, quiet=quiet
    )
    if script is not None:
        command = [sys.executable, "-c", script, *command[3:]]
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while b" ready." not in log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield worker
    finally:
        if worker.poll() is None:
            worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


@contextmanager
def celery_worker(log: Path, *, ready_timeout: float = 30.0) -> Iterator[Any]:
    """A `celery worker -P solo` process on BROKER_URL using tests.settings, non-eager.

    It reads the same test database as the runtime role, so the data it needs must be
    committed. The worker is terminated (killed after 10 s) when the block ends.
    """
    redis.Redis.from_url(BROKER_URL).flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": BROKER_URL,
        "EARSHOT_TEST_EAGER": "0",
        "PYTHONPATH": str(ROOT),
    }
    with worker_subprocess(env, log, name="e2e", ready_timeout=ready_timeout) as w:
        yield w


@contextmanager
def live_stack_with_worker(log: Path) -> Iterator[None]:
    """channels-redis in this process, the ASGI app loaded, a real worker on the
    broker and `.delay()` sending to it, for the block."""
    with (
        override_settings(CHANNEL_LAYERS=REDIS_LAYERS),
        celery_worker(log),
        real_broker(),
    ):
        asgi_application()
        yield
