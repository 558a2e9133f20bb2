"""Served CPU per request: `helpdesk.web_server --workers 2` of each checkout,
phases alternating between them, each worker's CPU read from /proc.

  scripts/peer_profile.sh --phases ping --count 30   # the database and STATE
  .venv/bin/python scripts/peer_served.py --roots /tmp/old,/tmp/new \\
      --state STATE --ports 8812,8813 --pairs 4 --count 3000 --phases ping,reply

Env as scripts/peer_profile.sh (EARSHOT_DB, EARSHOT_OWNER, EARSHOT_APP,
PG_HOSTPORT, REDIS_HOSTPORT, REDIS_DB; the broker on REDIS_DB + 1, nothing
consumes it). Each root is served from its own checkout with its own .venv; 8
keep-alive connections (tests/perf/loadgen.py, in this process) send GET ping/
or a reply POST. Printed per phase and root: the workers' user and system CPU
per request, the acceptor's, this client's, the rate and the load; then the
medians and every raw value. `--hold S` serves only the first root and sends
its first phase for S seconds (for py-spy on a worker).
"""

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.perf import loadgen

TICK = os.sysconf("SC_CLK_TCK")


def server_env(root: str) -> dict[str, str]:
    env = dict(os.environ)
    db = env.get("EARSHOT_DB", "earshot_profile")
    app = env.get("EARSHOT_APP", "earshot_profile_app")
    owner = env.get("EARSHOT_OWNER", "earshot_profile_owner")
    pg = env.get("PG_HOSTPORT", "127.0.0.1:5432")
    redis = env.get("REDIS_HOSTPORT", "127.0.0.1:6379")
    redis_db = int(env.get("REDIS_DB", "1"))
    env.update(
        DJANGO_SETTINGS_MODULE="helpdesk.settings",
        DATABASE_URL=f"postgresql://{app}@{pg}/{db}",
        MIGRATOR_DATABASE_URL=f"postgresql://{owner}@{pg}/{db}",
        REDIS_URL=f"redis://{redis}/{redis_db}",
        CELERY_BROKER_URL=f"redis://{redis}/{redis_db + 1}",
        SECRET_KEY="profile-only-secret-key-" + "x" * 40,
        EARSHOT_DEMO="0",
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        API_RATE_LIMIT="1000000/min",
        EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        PYTHONPATH=root,
    )
    return env


def start(root: str, port: int) -> "subprocess.Popen[bytes]":
    command = [f"{root}/.venv/bin/python", "-m", "helpdesk.web_server"]
    command += ["helpdesk.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--log-level", "warning"]
    command += ["--no-access-log"]
    with open(Path(tempfile.gettempdir()) / f"peer_served_{port}.log", "wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own server, our argv
            command,
            cwd=root,
            env=server_env(root),
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listed:
            found += [int(child) for child in listed.read().split()]
    return found


def cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of every thread of `pid`."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def wait_open(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


class Requests:
    def __init__(self, state: dict[str, str], run: str) -> None:
        self.api = f"/api/v1/t/{state['slug']}"
        self.channel = state["channel"]
        self.headers = {
            "Authorization": f"Bearer {state['token']}",
            "Accept": "*/*",
            "User-Agent": "peer-served",
        }
        self.run = run
        self.number = 0
        self.conversations: list[int] = []

    def create_conversations(self, port: int, count: int = 40) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = dict(self.headers, **{"Content-Type": "application/json"})
        for n in range(count):
            body = {
                "external_id": f"served-{self.run}-{n}",
                "text": f"[{n}] Order not arrived",
                "author": {"id": f"{self.run}-c{n}", "handle": f"@c{n}", "name": "C"},
            }
            path = f"{self.api}/channels/{self.channel}/messages/"
            connection.request("POST", path, json.dumps(body), headers)
            response = connection.getresponse()
            data = response.read()
            if response.status != 201:
                raise SystemExit(f"create answered {response.status}: {data[:300]!r}")
            self.conversations.append(json.loads(data)["conversation_id"])
        connection.close()

    def make(self, phase: str, port: int, count: int) -> list[bytes]:
        made = []
        for _ in range(count):
            self.number += 1
            n = self.number
            if phase == "ping":
                lines = [f"GET {self.api}/ping/ HTTP/1.1", f"Host: 127.0.0.1:{port}"]
                lines += [f"{name}: {value}" for name, value in self.headers.items()]
                made.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            else:
                conversation = self.conversations[n % len(self.conversations)]
                path = f"{self.api}/conversations/{conversation}/messages/"
                body = {"text": f"Thanks, looking at order {n} now ({self.run})."}
                headers = dict(self.headers, **{"Content-Type": "application/json"})
                made.append(
                    loadgen.post_request(port, path, json.dumps(body).encode(), headers)
                )
        return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roots", required=True, help="checkouts, comma-separated")
    parser.add_argument("--ports", default="8812,8813")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--phases", default="ping,reply")
    parser.add_argument("--state", required=True, help="peer_profile.sh's STATE")
    parser.add_argument("--hold", type=float, default=0)
    args = parser.parse_args()
    with open(args.state) as state_file:
        requests = Requests(json.load(state_file), f"s{int(time.time())}")
    roots = args.roots.split(",")
    ports = [int(port) for port in args.ports.split(",")][: len(roots)]
    phases = args.phases.split(",")
    servers = [start(root, port) for root, port in zip(roots, ports, strict=True)]
    try:
        for port in ports:
            wait_open(port)
        time.sleep(3)
        workers = {
            port: children(s.pid) for s, port in zip(servers, ports, strict=True)
        }
        print("workers", workers, flush=True)  # noqa: T201
        requests.create_conversations(ports[0])
        for port in ports:  # warm-up
            for phase in phases:
                loadgen.closed_loop(port, requests.make(phase, port, 300), args.conns)
        if args.hold:
            print("holding", flush=True)  # noqa: T201
            end = time.monotonic() + args.hold
            while time.monotonic() < end:
                sent = requests.make(phases[0], ports[0], 2000)
                loadgen.closed_loop(ports[0], sent, args.conns)
            return
        results: dict[tuple[str, str], list[float]] = {}
        for i in range(args.pairs):
            for phase in phases:
                order = list(zip(roots, ports, servers, strict=True))
                if i % 2:
                    order.reverse()
                for root, port, server in order:
                    sent = requests.make(phase, port, args.count)
                    pids = [*workers[port], server.pid]
                    before = [cpu(pid) for pid in pids]
                    load = open("/proc/loadavg").read().split()[0]  # noqa: SIM115
                    client = time.process_time()
                    outcome = loadgen.closed_loop(port, sent, args.conns)
                    client = (time.process_time() - client) / args.count * 1e6
                    after = [cpu(pid) for pid in pids]
                    user = [b[0] - a[0] for a, b in zip(before, after, strict=True)]
                    system = [b[1] - a[1] for a, b in zip(before, after, strict=True)]
                    u = sum(user[:-1]) / args.count * 1e6
                    s = sum(system[:-1]) / args.count * 1e6
                    for name, value in [
                        ("", u + s),
                        (" user", u),
                        (" sys", s),
                        (" client", client),
                    ]:
                        results.setdefault((phase + name, root), []).append(value)
                    bad = {k: v for k, v in outcome.statuses.items() if k >= 300}
                    print(  # noqa: T201
                        f"{i} {phase:5s} {root:16s} workers {u + s:7.0f} us/req "
                        f"(user {u:.0f}, sys {s:.0f}), acceptor "
                        f"{user[-1] + system[-1]:.2f} s, client {client:.0f} us/req, "
                        f"{outcome.rate:6.0f}/s, load {load} {bad or ''}",
                        flush=True,
                    )
        for (name, root), values in sorted(results.items()):
            print(  # noqa: T201
                f"{name:12s} {root:16s} median {statistics.median(values):.0f} us  "
                f"raw {[round(value) for value in values]}"
            )
    finally:
        for server in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
