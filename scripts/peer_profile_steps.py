"""CPU per step inside whole requests: where a request's time goes, in context.

  scripts/peer_profile.sh --steps [--phases ping,create,reply] [--count N] \
      [--step module:Class.method ...]

A step measured alone in a loop (scripts/peer_levers.py) runs with warm caches
and says little about what it costs between the rest of a request: a Redis or
PostgreSQL round trip measured 40-100 us in a loop and 150-250 us inside a
request on the 2-core bench machine (the loopback's kernel time is charged to
the caller, and the request's other code evicts the caches). Here the
side-by-side's requests (scripts/peer_profile.py's in-process ASGI driver) run
one at a time with each named function wrapped: the figure is its inclusive
thread CPU (`time.thread_time`) per request, next to the process CPU of the whole
request. Wrapped functions nest (inclusive times), and each wrapper adds about a
microsecond per call. Only functions and methods looked up at call time can be
wrapped (not a method already bound into the middleware chain or the handler).
"""

import argparse
import asyncio
import functools
import importlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_profile

DEFAULT_STEPS = (
    "tenants.middleware:TenantMiddleware.api",
    "tenants.api_tokens:open_tenant_with_token",
    "tenants.opening:fetch_by_token",
    "rest_framework.views:APIView.dispatch",
    "rest_framework.views:APIView.initial",
    "tenants.api_auth:ApiRateThrottle.allow_request",
    "social.api_channel:access_api_channel",
    "social.api_channel:access_api_channel_for_push",
    "helpdesk.api_output:validated_input",
    "social.api_channel:record_channel_message",
    "django.db.backends.base.base:BaseDatabaseWrapper.commit",
    "django.db.backends.base.base:BaseDatabaseWrapper.run_and_clear_commit_hooks",
    "tenants.tasks:enqueue",
    "helpdesk.publish:_DirectPublisher.publish",
    "redis.client:Redis.execute_command",
    "redis.client:Pipeline.execute",
)


class Steps:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str) -> None:
        """Replace `module:Owner.attribute` (or `module:function`) by a timed copy."""
        module_name, _, dotted = name.partition(":")
        owner: Any = importlib.import_module(module_name)
        *path, attribute = dotted.split(".")
        for part in path:
            owner = getattr(owner, part)
        raw = vars(owner).get(attribute) if isinstance(owner, type) else None
        if isinstance(raw, staticmethod):
            original: Callable[..., Any] = raw.__func__
        else:
            original = getattr(owner, attribute)
        if not callable(original) or isinstance(
            raw, property | functools.cached_property
        ):
            raise SystemExit(f"{name} is not a function or method")
        seconds, calls = self.seconds, self.calls

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[name] += time.thread_time() - start
                calls[name] += 1

        replacement: Any = (
            staticmethod(timed) if isinstance(raw, staticmethod) else timed
        )
        setattr(owner, attribute, replacement)
        if not path:
            # Modules that imported the function by name call their own reference.
            for module in list(sys.modules.values()):
                if module is not owner and getattr(module, attribute, None) is original:
                    setattr(module, attribute, timed)

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slug", required=True)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--phases", default="ping,create,reply")
    parser.add_argument("--step", action="append", help="module:Owner.attribute")
    args = parser.parse_args(argv)

    import uvloop

    from helpdesk.asgi import application

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    workload = peer_profile.Workload(args.slug, args.channel, f"s{int(time.time())}")

    def run(calls: list[peer_profile.Call]) -> list[tuple[int, bytes]]:
        async def go() -> list[tuple[int, bytes]]:
            return [
                await peer_profile._asgi_call(application, call, args.token)
                for call in calls
            ]

        return loop.run_until_complete(go())

    for status, body in run([workload.create() for _ in range(40)]):
        if status != 201:
            raise SystemExit(f"create answered {status}: {body[:300]!r}")
        workload.conversations.append(json.loads(body)["conversation_id"])
    steps = Steps()
    names = args.step or list(DEFAULT_STEPS)
    for name in names:
        steps.wrap(name)
    makers = {
        "ping": workload.ping,
        "create": workload.create,
        "reply": workload.reply,
        "list": workload.list,
        "detail": workload.detail,
    }
    for phase in args.phases.split(","):
        make = makers[phase]
        run([make() for _ in range(30)])  # warm-up
        steps.clear()
        calls = [make() for _ in range(args.count)]
        start = time.process_time()
        results = run(calls)
        total = (time.process_time() - start) / args.count
        bad = [status for status, _ in results if status >= 300]
        print(  # noqa: T201
            f"== {phase}: {total * 1e6:.0f} us CPU per request (process)"
            + (f", {len(bad)} non-2xx" if bad else ""),
            flush=True,
        )
        for name in names:
            if steps.calls[name]:
                print(  # noqa: T201
                    f"  {steps.seconds[name] / args.count * 1e6:7.0f} us"
                    f"  {steps.calls[name] / args.count:4.1f} calls  {name}",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
