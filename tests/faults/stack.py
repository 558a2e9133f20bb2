"""The production-shaped stack the fault suite breaks, one per test, on loopback.

- a private `redis-server` on a free port: the stack's cache and channel layer, and
  the broker in the Redis runs (the machine's Redis on 6379 is the test process's
  cache and is never touched);
- in the RabbitMQ runs, a vhost of its own on the machine's RabbitMQ, deleted after;
- `python -m helpdesk.web_server helpdesk.asgi:application --workers 2`;
- Earshot's `celery worker` processes (prefork), each in a session of its own so
  `kill -9` of the session takes the pool children too; `kill_worker` starts a
  replacement at once, as a supervisor would;
- `celery beat` (the sweepers) with its schedule in a temporary directory;
- the Sandbox's webhook sender: a worker on the Sandbox's own queue, playing the
  platform's infrastructure (never killed; see stack_settings.py);
- with `procfile=True`, `make serve`'s topology (Procfile): one worker per queue
  (inbound, delivery, default) and the runtime role through a pgbouncer of its
  own in transaction mode (helpdesk/pgbouncer.py).

Every process uses tests/faults/stack_settings.py and reaches the test database as
the runtime role. Logs go to tests/faults/artifacts/logs/<test>/.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import redis

from helpdesk.celery import app as celery_app
from helpdesk.pgbouncer import Pgbouncer, PgbouncerConfig
from tests.helpdesk.live import (
    CELERY,
    celery_worker_command,
    free_port,
    web_server_command,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
# The Sandbox's webhook task goes to this queue (stack_settings.py routes it).
SANDBOX_QUEUE = "sandbox"
# Earshot's workers here take all three queues (helpdesk/settings.py routes every
# task to one); `make serve` gives each queue workers of its own.
WORKER_QUEUES = "inbound,delivery,default"
PROCFILE_QUEUES = ("inbound", "delivery", "default")
# The Procfile's web line's timeout: an old ASGI worker stops within 10 s of being
# retired even with websockets open.
PROCFILE_WEB = ["--timeout-graceful-shutdown", "10"]


class Process:
    """One supervised command in a session of its own, logging to a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    def start(self, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_for_log(self, text: str, timeout: float) -> None:
        assert self.log is not None
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.1)

    def signal_group(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """`kill -9` of the process and everything in its session."""
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        # Pool children that outlived their parent.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return f"[{self.name}: no log]"
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log.name} ---\n" + "\n".join(text)


class PrivateRedis:
    """`redis-server` on a free port, no persistence: stop() is an outage."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.starts = 0
        command = [
            _tool("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        self.process = Process("redis", command, dict(os.environ))

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.starts += 1
        self.process.start(self.log_dir / f"redis-{self.starts}.log")
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis did not start:\n{self.process.tail()}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        self.process.stop()


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        raise RuntimeError(f"{name} is not installed")
    return path


def rabbitmqctl(*args: str) -> None:
    subprocess.run([_tool("rabbitmqctl"), "-q", *args], check=True, capture_output=True)


class Stack:
    """The processes of one test; `start()`, break things, `stop()`."""

    def __init__(
        self,
        broker: str,
        log_dir: Path,
        tmp: Path,
        *,
        workers: int = 2,
        concurrency: int = 2,
        slow_post_seconds: float = 0.0,
        procfile: bool = False,
    ) -> None:
        assert broker in ("redis", "rabbitmq")
        # Procfile's worker lines: one worker per queue.
        self.queues = PROCFILE_QUEUES if procfile else (WORKER_QUEUES,) * workers
        self.procfile = procfile
        self.broker = broker
        self.log_dir = log_dir
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis = PrivateRedis(log_dir)
        self.vhost = f"earshot-faults-{uuid.uuid4().hex[:8]}"
        self.broker_url = (
            self.redis.url(1) if broker == "redis" else f"{RABBITMQ}/{self.vhost}"
        )
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.faults.stack_settings",
            "EARSHOT_LIVE_URL": self.url,
            "EARSHOT_TEST_EAGER": "0",
            "CELERY_BROKER_URL": self.broker_url,
            "REDIS_URL": self.redis.url(0),
            "SANDBOX_SLOW_POST_SECONDS": str(slow_post_seconds),
            "EARSHOT_SANDBOX_QUEUE": SANDBOX_QUEUE,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        self.bouncer = _stack_pgbouncer(log_dir) if procfile else None
        if self.bouncer is not None:
            self.env["DATABASE_URL"] = self.bouncer.url
            self.env["DATABASE_PGBOUNCER"] = "1"
        self.concurrency = concurrency
        self.server = Process("server", self._server_command(), self.env)
        self.workers = [self._worker(i) for i in range(len(self.queues))]
        self.worker_starts = [0] * len(self.queues)
        self.sandbox_worker = Process(
            "sandbox-worker",
            self._celery_worker_command("sandbox", SANDBOX_QUEUE, "threads", 8),
            self.env,
        )
        self.beat = Process(
            "beat",
            [
                CELERY,
                "-A",
                "helpdesk",
                "beat",
                "-s",
                str(tmp / "beat-schedule"),
                "--pidfile",
                str(tmp / "beat.pid"),
                "-l",
                "INFO",
            ],
            self.env,
        )
        self.kills: list[str] = []

    # -- commands --------------------------------------------------------------

    def _server_command(self) -> list[str]:
        command = web_server_command(self.port, workers=2)
        if self.procfile:
            command += PROCFILE_WEB
        return command

    def _celery_worker_command(
        self, name: str, queue: str, pool: str, concurrency: int
    ) -> list[str]:
        return celery_worker_command(
            f"{name}-{self.port}", pool=pool, concurrency=concurrency, queue=queue
        )

    def _worker(self, index: int) -> Process:
        command = self._celery_worker_command(
            f"earshot{index}", self.queues[index], "prefork", self.concurrency
        )
        return Process(f"worker-{index}", command, self.env)

    # -- lifecycle -------------------------------------------------------------

    def start_services(self) -> None:
        """Redis and the broker: what the test process needs to publish tasks."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        if self.bouncer is not None:
            self.bouncer.start()
        if self.broker == "rabbitmq":
            rabbitmqctl("add_vhost", self.vhost)
            rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def start_processes(self) -> None:
        self.server.start(self.log_dir / "server.log")
        self.sandbox_worker.start(self.log_dir / "sandbox-worker.log")
        for index in range(len(self.workers)):
            self._start_worker(index)
        self.beat.start(self.log_dir / "beat.log")
        self._wait_healthy(60)
        self.sandbox_worker.wait_for_log(" ready.", 60)
        for worker in self.workers:
            worker.wait_for_log(" ready.", 60)
        self.beat.wait_for_log("beat: Starting", 30)

    def _start_worker(self, index: int) -> None:
        self.worker_starts[index] += 1
        log = self.log_dir / f"worker-{index}-{self.worker_starts[index]}.log"
        self.workers[index].start(log)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if not self.server.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.server.tail()}")
            time.sleep(0.2)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill_worker(self, index: int, *, why: str = "") -> float:
        """`kill -9` worker `index` (pool children too), start its replacement and
        wait until it is ready; returns the monotonic time it was."""
        self.workers[index].kill()
        self.kills.append(f"worker-{index}{' ' + why if why else ''}")
        self._start_worker(index)
        self.workers[index].wait_for_log(" ready.", 60)
        return time.monotonic()

    def kill_all_workers(self, *, why: str = "") -> float:
        for worker in self.workers:
            worker.signal_group(signal.SIGKILL)
        for index, worker in enumerate(self.workers):
            worker.kill()
            self.kills.append(f"worker-{index}{' ' + why if why else ''}")
            self._start_worker(index)
        for worker in self.workers:
            worker.wait_for_log(" ready.", 60)
        return time.monotonic()

    # -- rolling restarts (a deploy) ------------------------------------------------

    def asgi_children(self) -> set[int]:
        """The ASGI worker processes (the web server's children)."""
        assert self.server.process is not None
        parent = self.server.process.pid
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        found = set()
        for pid in children:
            with suppress(OSError):
                if b"--worker-fd" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(int(pid))
        return found

    def rolling_restart_server(self, timeout: float = 90) -> float:
        """SIGHUP to the web server: it replaces each ASGI worker in turn, the new one
        ready before the old one stops. Returns when all are new and answer."""
        assert self.server.process is not None
        old = self.asgi_children()
        self.server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            now = self.asgi_children()
            if len(now) == len(old) and not now & old and self.healthy():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"ASGI workers not replaced:\n{self.server.tail()}")
            time.sleep(0.2)
        self.kills.append(f"asgi {sorted(old)} -> {sorted(now)}")
        return time.monotonic()

    def rolling_restart_worker(self, index: int, timeout: float = 60) -> float:
        """Start worker `index`'s replacement, wait until it is ready, then stop the
        old one with SIGTERM (a warm shutdown: it finishes what it runs)."""
        old = self.workers[index]
        new = Process(old.name, old.command, self.env)
        self.worker_starts[index] += 1
        new.start(self.log_dir / f"worker-{index}-{self.worker_starts[index]}.log")
        new.wait_for_log(" ready.", timeout)
        self.workers[index] = new
        assert old.process is not None
        old.process.send_signal(signal.SIGTERM)
        try:
            old.process.wait(timeout=timeout)
        finally:
            old.stop()
        self.kills.append(f"worker-{index} ({self.queues[index]})")
        return time.monotonic()

    def restart_beat(self) -> float:
        """Beat is a singleton: stop it, then start it again."""
        self.beat.stop()
        self.beat.start(self.log_dir / f"beat-{time.monotonic_ns()}.log")
        self.beat.wait_for_log("beat: Starting", 30)
        self.kills.append("beat")
        return time.monotonic()

    def processes(self) -> list[Process]:
        return [self.server, *self.workers, self.sandbox_worker, self.beat]

    def dead(self) -> list[str]:
        """Names of processes that are not running (or a server that won't answer)."""
        down = [p.name for p in self.processes() if not p.alive()]
        if self.server.alive() and not self.healthy():
            down.append("server (no answer on /healthz)")
        return down

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()
        if self.bouncer is not None:
            self.bouncer.stop()
        self.redis.stop()
        if self.broker == "rabbitmq":
            with suppress(subprocess.CalledProcessError):
                rabbitmqctl("delete_vhost", self.vhost)

    def tails(self, lines: int = 40) -> str:
        logs = sorted(self.log_dir.glob("*.log"))
        parts = []
        for log in logs:
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def worker_logs(self) -> str:
        return "\n".join(
            log.read_text(errors="replace")
            for log in sorted(self.log_dir.glob("worker-*.log"))
        )


class StackPgbouncer(Pgbouncer):
    """The stack's pgbouncer: the test database, the runtime role, a free port."""

    @property
    def url(self) -> str:
        from django.conf import settings

        runtime = settings.DATABASES["default"]
        return (
            f"postgresql://{runtime['USER']}@127.0.0.1:{self.config.listen_port}"
            f"/{runtime['NAME']}"
        )

    def restart(self, down: float) -> float:
        """Stop it (immediate shutdown: its connections drop), stay down `down`
        seconds, start it again on the same port; returns when it listens."""
        self.stop()
        time.sleep(down)
        self.start()
        return time.monotonic()


def _stack_pgbouncer(log_dir: Path) -> StackPgbouncer:
    from django.conf import settings

    runtime = settings.DATABASES["default"]
    # pgbouncer runs as `postgres` under root: its folder must be reachable.
    folder = Path(tempfile.mkdtemp(prefix="earshot-faults-pgbouncer-"))
    folder.chmod(0o755)
    config = PgbouncerConfig(
        directory=folder,
        listen_port=free_port(),
        databases=(runtime["NAME"],),
        users={runtime["USER"]: None},
        upstream_host=runtime["HOST"] or "127.0.0.1",
        upstream_port=int(runtime["PORT"] or 5432),
    )
    return StackPgbouncer(config, log_dir / "pgbouncer.log")


def restart_postgres() -> float:
    """Restart the machine's PostgreSQL; returns when it accepts connections."""
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(
        [
            _tool("pg_ctlcluster"),
            "--skip-systemctl-redirect",
            version,
            "main",
            "restart",
        ],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [_tool("pg_isready"), "-h", "127.0.0.1", "-p", "5432", "-q"], check=False
        )
        if ready.returncode == 0:
            return time.monotonic()
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not come back within 60 s")


@contextmanager
def publishing_to(broker_url: str) -> Iterator[None]:
    """Tasks this process sends (the Sandbox's fan-out, replies' delivery) go to the
    stack's broker, the Sandbox's webhooks on its own queue, instead of running
    eagerly here."""
    from kombu import pools

    conf = celery_app.conf
    keys = ("task_always_eager", "broker_url", "task_routes")
    saved = {key: conf[key] for key in keys}
    app: Any = celery_app

    def drop_pools() -> None:
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None
        app.amqp.__dict__.pop("router", None)
        app.amqp._rtable = None

    drop_pools()
    conf.update(
        task_always_eager=False,
        broker_url=broker_url,
        task_routes={
            **(saved["task_routes"] or {}),
            "sandbox.deliver_webhook": {"queue": SANDBOX_QUEUE},
        },
    )
    try:
        yield
    finally:
        drop_pools()
        conf.update(saved)


def clean_artifacts(log_dir: Path) -> None:
    if log_dir.exists():
        shutil.rmtree(log_dir)
    log_dir.mkdir(parents=True)
