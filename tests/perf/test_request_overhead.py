"""The fixed cost of a tenant request, in process: CPU and statements per request.

Django's WSGI handler with the project's middleware is called directly (no server,
no client library), so the figures are the framework, the middleware, the
authentication and the view, nothing else. Paths:
- the ping endpoint with a bearer token (authentication in the workspace only);
- the brand list with a bearer token (one query of its own);
- the ping endpoint with the browser session;
- the workspace page `/t/<slug>/` with the browser session.

CPU is `time.process_time()` over a batch of requests after a warm-up, so the
figure is this process's CPU (PostgreSQL's and Redis's work is not in it). The
rate limit is raised so that no request answers 429; its history grows with the
batch as it would for one busy token.
"""

import cProfile
import io
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, RequestFactory

from tenants.api_auth import ApiRateThrottle
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.perf.report import Figure, conninfo, machine_facts, print_report
from tests.statements import count_statements

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

WARMUP = 50
REQUESTS = 400
PROFILE = os.environ.get("EARSHOT_BENCH_PROFILE", "") == "1"


def _environ(path: str, **headers: str) -> Callable[[], dict[str, Any]]:
    factory = RequestFactory()

    def build() -> dict[str, Any]:
        environ: dict[str, Any] = factory._base_environ(  # type: ignore[attr-defined]
            PATH_INFO=path, REQUEST_METHOD="GET", **headers
        )
        return environ

    return build


def _measure(
    handler: WSGIHandler, environ: Callable[[], dict[str, Any]]
) -> tuple[float, float, int, list[str]]:
    """CPU and wall µs per request, the status, and the statements of one."""
    statuses: list[str] = []

    def start_response(status: str, headers: Any, *args: Any) -> Any:
        statuses.append(status)

    def call() -> None:
        body = handler(environ(), start_response)
        b"".join(body)
        body.close()

    for _ in range(WARMUP):
        call()
    environs = [environ() for _ in range(REQUESTS)]
    cpu, wall = time.process_time(), time.perf_counter()
    for env in environs:
        body = handler(env, start_response)
        b"".join(body)
        body.close()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if PROFILE:
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for _ in range(100):
            call()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue())  # noqa: T201 - the profile is the report
    with count_statements() as seen:
        call()
    status = int(statuses[-1].split()[0])
    return cpu / REQUESTS * 1e6, wall / REQUESTS * 1e6, status, seen.sql


def test_fixed_cost_of_a_tenant_request(
    tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ApiRateThrottle, "THROTTLE_RATES", {"api": "1000000/min"})
    with tenant_context(tenant):
        _, raw = create_api_token(
            membership_of(tenant, owner), name="bench", scope="admin"
        )
    browser = Client()
    browser.force_login(owner)
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={browser.cookies[name].value}"
    api = f"/api/v1/t/{tenant.slug}"
    bearer = f"Bearer {raw}"
    paths = {
        "token ping": _environ(f"{api}/ping/", HTTP_AUTHORIZATION=bearer),
        "token brand list": _environ(f"{api}/brands/", HTTP_AUTHORIZATION=bearer),
        "session ping": _environ(f"{api}/ping/", HTTP_COOKIE=cookie),
        "workspace page": _environ(f"/t/{tenant.slug}/", HTTP_COOKIE=cookie),
    }
    handler = WSGIHandler()
    figures, notes = [], []
    for label, environ in paths.items():
        cpu, wall, status, statements = _measure(handler, environ)
        figures.append(Figure(f"{label}: CPU per request", cpu, "µs"))
        figures.append(Figure(f"{label}: wall per request", wall, "µs"))
        figures.append(Figure(f"{label}: statements", len(statements), ""))
        notes.append(
            f"{label} (HTTP {status}): " + " | ".join(s[:60] for s in statements)
        )
    print_report(
        f"fixed cost of a tenant request, in process ({REQUESTS} requests each)",
        machine_facts(conninfo()),
        notes,
        figures,
    )
