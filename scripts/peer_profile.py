"""Where an API request's CPU goes: the side-by-side's requests, in one process.

  scripts/peer_profile.sh                    # fresh database, then this script
  python scripts/peer_profile.py --slug S --channel C --token T [options]

With the production settings of scripts/peer_side_by_side.sh (DEBUG off, the
runtime role, Celery publishing to Redis), the same requests bench.py sends
(ping, create, reply, list, detail with its thread) are handed to
`helpdesk.asgi.application` by an in-process ASGI driver (no socket, no HTTP
parsing), one at a time or from `--clients` concurrent tasks. For each phase it
prints the CPU and wall time per request (`time.process_time`, every thread of
this process), and with `--wsgi` the same requests through Django's WSGI handler
(the same middleware and views without the ASGI layer), so the difference is the
ASGI layer's own cost. `--profile` adds a cProfile of the WSGI path (the thread
that runs the view) and `--sample` a wall-clock stack sample of every thread.
"""

import argparse
import asyncio
import cProfile
import io
import itertools
import json
import pstats
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

Call = tuple[str, str, str, bytes]  # method, path, query string, JSON body


def _scope(method: str, path: str, query: str, token: str, body: bytes) -> Any:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"accept", b"*/*"),
        (b"user-agent", b"peer-profile"),
    ]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8801),
        "state": {},
    }


async def _asgi_call(app: Any, call: Call, token: str) -> tuple[int, bytes]:
    method, path, query, body = call
    delivered = False
    forever = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await forever.wait()
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(method, path, query, token, body), receive, send)
    return status, b"".join(chunks)


def _wsgi_call(handler: Any, call: Call, token: str) -> tuple[int, bytes]:
    method, path, query, body = call
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8801",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    statuses: list[str] = []

    def start_response(status: str, headers: Any, *args: Any) -> None:
        statuses.append(status)

    result = handler(environ, start_response)
    content = b"".join(result)
    result.close()
    return int(statuses[0].split()[0]), content


class Sampler(threading.Thread):
    """Every `interval` seconds, the stack of every other thread (wall clock)."""

    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.inclusive: Counter[str] = Counter()
        self.leaf: Counter[str] = Counter()
        self.samples = 0
        self.running = True

    def run(self) -> None:
        me = threading.get_ident()
        while self.running:
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                names: list[str] = []
                current: Any = frame
                while current is not None:
                    code = current.f_code
                    names.append(
                        f"{code.co_filename.split('site-packages/')[-1]}:"
                        f"{code.co_firstlineno}({code.co_qualname})"
                    )
                    current = current.f_back
                if "select" in names[0] or ("_worker" in names[-1] and len(names) < 6):
                    continue  # idle: the loop waiting, an idle pool thread
                self.samples += 1
                self.leaf[names[0]] += 1
                for name in set(names):
                    self.inclusive[name] += 1
            time.sleep(self.interval)

    def report(self, top: int) -> str:
        lines = [f"{self.samples} busy-thread samples; inclusive:"]
        for name, count in self.inclusive.most_common(top):
            lines.append(f"  {100 * count / self.samples:5.1f}%  {name}")
        lines.append("leaf:")
        for name, count in self.leaf.most_common(top // 2):
            lines.append(f"  {100 * count / self.samples:5.1f}%  {name}")
        return "\n".join(lines)


class Workload:
    """bench.py's requests in Earshot's shape (tests/perf/peer_adapter.py)."""

    def __init__(self, slug: str, channel: int, run: str) -> None:
        self.api = f"/api/v1/t/{slug}"
        self.channel = channel
        self.run = run
        self.numbers = itertools.count()
        self.conversations: list[int] = []

    def ping(self) -> Call:
        return ("GET", f"{self.api}/ping/", "", b"")

    def create(self) -> Call:
        n = next(self.numbers)
        body = {
            "external_id": f"prof-{self.run}-{n}",
            "text": f"[{n}] Order not arrived\n\nMy order {n} has not arrived yet. "
            "Could you check where it is? It was due last week.",
            "author": {
                "id": f"{self.run}-cust{n}",
                "handle": f"@cust{n}",
                "name": f"Customer {n}",
            },
        }
        path = f"{self.api}/channels/{self.channel}/messages/"
        return ("POST", path, "", json.dumps(body).encode())

    def reply(self) -> Call:
        n = next(self.numbers)
        conversation = self.conversations[n % len(self.conversations)]
        body = {"text": f"Thanks, we are looking at order {n} now ({self.run})."}
        path = f"{self.api}/conversations/{conversation}/messages/"
        return ("POST", path, "", json.dumps(body).encode())

    def list(self) -> Call:
        return ("GET", f"{self.api}/conversations/", "status=open", b"")

    def detail(self) -> Call:
        n = next(self.numbers)
        conversation = self.conversations[(n * 7919) % len(self.conversations)]
        path = f"{self.api}/conversations/{conversation}/"
        return ("GET", path, "include=messages", b"")


def _phase(
    label: str,
    make: Callable[[], Call],
    count: int,
    run_calls: Callable[[list[Call]], list[tuple[int, bytes]]],
    workload: Workload,
) -> list[tuple[int, bytes]]:
    calls = [make() for _ in range(count)]
    cpu, wall = time.process_time(), time.perf_counter()
    results = run_calls(calls)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    bad = Counter(status for status, _ in results if status >= 300)
    print(  # noqa: T201
        f"{label:<22} {count:5d} req  CPU {cpu / count * 1e3:6.2f} ms/req  "
        f"wall {wall / count * 1e3:6.2f} ms/req  {count / wall:7.1f} req/s"
        + (f"  non-2xx {dict(bad)} {results[0][1][:200]!r}" if bad else ""),
        flush=True,
    )
    return results


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slug", required=True)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--phases", default="ping,create,reply,list,detail")
    parser.add_argument("--wsgi", action="store_true", help="also through WSGI")
    parser.add_argument("--profile", action="store_true", help="cProfile (WSGI)")
    parser.add_argument("--sample", action="store_true", help="stack samples (ASGI)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--app",
        default="full",
        choices=["full", "django", "sync"],
        help="helpdesk.asgi.application, Django's ASGIHandler alone, or "
        "helpdesk.asgi_handler.SyncASGIHandler alone",
    )
    parser.add_argument("--threads", type=int, default=4, help="with --app sync")
    args = parser.parse_args(argv)

    import uvloop

    from helpdesk.asgi import application

    if args.app == "django":
        from django.core.handlers.asgi import ASGIHandler

        application = ASGIHandler()
    elif args.app == "sync":
        from helpdesk.asgi_handler import SyncASGIHandler

        application = SyncASGIHandler(threads=args.threads)

    workload = Workload(args.slug, args.channel, f"p{int(time.time())}")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)

    def asgi_calls(calls: list[Call]) -> list[tuple[int, bytes]]:
        async def go() -> list[tuple[int, bytes]]:
            pending = list(enumerate(calls))
            results: list[tuple[int, bytes]] = [(0, b"")] * len(calls)

            async def client() -> None:
                while pending:
                    index, call = pending.pop()
                    results[index] = await _asgi_call(application, call, args.token)

            await asyncio.gather(*(client() for _ in range(args.clients)))
            return results

        return loop.run_until_complete(go())

    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()

    def wsgi_calls(calls: list[Call]) -> list[tuple[int, bytes]]:
        return [_wsgi_call(handler, call, args.token) for call in calls]

    phases = args.phases.split(",")
    makers = {
        "ping": workload.ping,
        "create": workload.create,
        "reply": workload.reply,
        "list": workload.list,
        "detail": workload.detail,
    }
    # Conversations for replies and details come from the creates.
    for status, body in asgi_calls([workload.create() for _ in range(40)]):
        if status != 201:
            raise SystemExit(f"create answered {status}: {body[:300]!r}")
        workload.conversations.append(json.loads(body)["conversation_id"])
    for name in phases:
        make = makers[name]
        _phase(f"{name} warm-up", make, 30, asgi_calls, workload)
        sampler = Sampler() if args.sample else None
        if sampler:
            sampler.start()
        results = _phase(
            f"{name} asgi x{args.clients}", make, args.count, asgi_calls, workload
        )
        if sampler:
            sampler.running = False
            sampler.join()
            print(sampler.report(args.top))  # noqa: T201
        if name == "create":
            workload.conversations += [
                json.loads(body)["conversation_id"] for _, body in results
            ]
        if args.wsgi:
            _phase(f"{name} wsgi", make, args.count, wsgi_calls, workload)
        if args.profile:
            profile = cProfile.Profile(time.process_time)
            calls = [make() for _ in range(args.count)]
            profile.enable()
            wsgi_calls(calls)
            profile.disable()
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top // 2)
            print(out.getvalue())  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1:])
