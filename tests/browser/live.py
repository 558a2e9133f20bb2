"""The real stack the browser journeys drive: a uvicorn process serving the ASGI app
(HTTP, websockets, static files through whitenoise) and a `celery worker` process,
both on the test's PostgreSQL database, with Redis as broker and channel layer.

The Sandbox network runs inside the same server, so its webhooks and Earshot's
calls to its API travel over real HTTP between the processes.
"""

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.helpdesk.live import free_port, web_server_command, worker_subprocess
from tests.redis_dbs import layer_prefix, redis_url

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Redis databases of their own: other test runs flush 15 (cache) and 14 (broker),
# which would drop presence and steal or lose this stack's tasks; each xdist worker
# has its own pair (tests/redis_dbs.py; EARSHOT_BROWSER_BROKER_URL and
# EARSHOT_BROWSER_REDIS_URL override them).
BROKER_URL = redis_url("browser_broker")
REDIS_URL = redis_url("browser_layer")
# The stack's channel layer: events the test process emits reach the server's sockets.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": layer_prefix(REDIS_URL)},
    }
}


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.browser.server_settings",
        "EARSHOT_LIVE_URL": url,
        "EARSHOT_TEST_EAGER": "0",
        "CELERY_BROKER_URL": BROKER_URL,
        "REDIS_URL": REDIS_URL,
        "ACCOUNT_EMAIL_VERIFICATION": "optional",
        "DJANGO_ALLOW_ASYNC_UNSAFE": "",
        "PYTHONPATH": str(ROOT),
    }


class LiveServer:
    """The server process; `stop()` and `start()` let a test cut every websocket."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 40.0) -> None:
        self.starts += 1
        log = (self.log_dir / f"server-{self.starts}.log").open("wb")
        command = web_server_command(self.port)
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=_env(self.url), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: see {log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as reply:  # noqa: S310 - loopback
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def worker_process(url: str, log: Path, *, timeout: float = 40.0) -> Iterator[None]:
    """A `celery worker -P solo` with the server's settings, on BROKER_URL."""
    for url_ in (BROKER_URL, REDIS_URL):
        redis.Redis.from_url(url_).flushdb()
    with worker_subprocess(_env(url), log, name="browser", ready_timeout=timeout):
        yield


@contextmanager
def live_stack() -> Iterator[LiveServer]:
    """Server and worker processes for a module of journeys; logs in artifacts/.

    Each xdist worker logs in a folder of its own: two modules' workers writing one
    file (each at its own offset) overwrote each other's lines, and the worker
    whose " ready." was overwritten counted as never started.
    """
    log_dir = ARTIFACTS / "logs" / (os.environ.get("PYTEST_XDIST_WORKER") or "main")
    log_dir.mkdir(parents=True, exist_ok=True)
    server = LiveServer(log_dir)
    with worker_process(server.url, log_dir / "worker.log"):
        server.start()
        try:
            yield server
        finally:
            server.stop()
