"""Batched ingest of deliveries of several tenants mixed in each batch: the
worker's CPU per item (in process), statements and claims per batch, the code
before 'mixed batches without the wasted attempt' (social.batch_ingest at its
previous commit, loaded from OLD_BATCH_INGEST when set) against the current,
alternating. Run by hand:

    OLD_BATCH_INGEST=/tmp/old_batch_ingest.py .venv/bin/pytest \\
        tests/perf/test_ingest_mixed_tenants.py -m bench -s -p no:randomly
"""

import importlib.util
import os
import statistics
import time
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from django.test import override_settings
from django.utils import timezone

from social import batch_ingest
from social.ingest import process_webhook_event
from social.models import WebhookEvent
from tests.factories import make_user, make_workspace
from tests.helpdesk.live import REDIS_LAYERS
from tests.perf.report import backend_ns
from tests.perf.test_ingest_throughput import open_all_hours_with_sandbox, store_bodies
from tests.statements import count_statements

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

TENANTS = int(os.environ.get("INGEST_TENANTS", "3"))
ITEMS = 600
BATCH = 100
ROUNDS = int(os.environ.get("INGEST_ROUNDS", "2"))  # each version, alternating


def store(prefix: str) -> list[int]:
    now = timezone.now() - timedelta(minutes=1)
    bodies: list[tuple[str, dict[str, Any]]] = []
    for n in range(ITEMS):
        post_id = f"{prefix}-p-{n}"
        root = f"{prefix}-t-{n % 200}"
        body = {
            "type": "post.created",
            "for_account": {"id": f"mix-acct-{n % TENANTS}"},
            "mentions_account": True,
            "post": {
                "id": post_id,
                "text": f"@acmeair my flight {n} is delayed again",
                "author": {"id": f"{prefix}-c-{n % 50}", "handle": f"c{n % 50}"},
                "in_reply_to": None if n < 200 else root,
                "root": root,
                "created_at": (now + timedelta(milliseconds=n)).isoformat(),
            },
        }
        bodies.append((post_id, body))
    return store_bodies(bodies, now)


def run(ids: list[int]) -> tuple[float, int, list[int], list[int]]:
    """Process the events as the worker does: (its CPU, the backend's CPU in
    ns, statements and FOR UPDATE statements per call)."""
    cpu = 0.0
    backend = 0
    statements: list[int] = []
    claims: list[int] = []
    remaining = list(ids)
    while remaining:
        pg = backend_ns()
        with count_statements() as seen:
            started = time.process_time()
            process_webhook_event(remaining[0], batch_size=BATCH)
            cpu += time.process_time() - started
        backend += backend_ns() - pg
        statements.append(len(seen))
        claims.append(sum("FOR UPDATE" in sql for sql in seen.sql))
        done = set(
            WebhookEvent.objects.filter(pk__in=remaining[: BATCH * 2])
            .exclude(status="received")
            .values_list("pk", flat=True)
        )
        remaining = [pk for pk in remaining if pk not in done]
    assert not WebhookEvent.objects.filter(pk__in=ids).exclude(status="processed")
    return cpu, backend, statements, claims


def test_mixed_tenant_batches_old_against_new() -> None:
    for n in range(TENANTS):
        owner = make_user(f"mix{n}@ingest.example")
        tenant = make_workspace(f"Mix {n}", owner=owner)
        open_all_hours_with_sandbox(tenant, owner, f"mix-acct-{n}")
    versions: dict[str, Any] = {"new": batch_ingest.process_batch}
    path = os.environ.get("OLD_BATCH_INGEST")
    if path:
        spec = importlib.util.spec_from_file_location("old_batch_ingest", path)
        assert spec is not None
        assert spec.loader is not None
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        versions = {"old": old.process_batch, **versions}
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in versions}
    with override_settings(CHANNEL_LAYERS=REDIS_LAYERS):
        with patch.object(batch_ingest, "process_batch", versions["new"]):
            run(store("warm"))
        for round_ in range(ROUNDS):
            for name, process in versions.items():
                with patch.object(batch_ingest, "process_batch", process):
                    cpu, backend, statements, claims = run(store(f"{name}{round_}"))
                per_batch = statistics.mean(statements)
                results[name].append((cpu / ITEMS * 1e6, backend / ITEMS / 1e3, 0.0))
                print(  # noqa: T201
                    f"{name} round {round_}: CPU {cpu / ITEMS * 1e6:.0f} us/item, "
                    f"{len(statements)} calls, statements/call {per_batch:.1f}, "
                    f"FOR UPDATE claims/call {statistics.mean(claims):.2f}, "
                    f"PostgreSQL backend CPU {backend / ITEMS / 1e3:.0f} us/item "
                    f"(incl. the pid lookups), load {os.getloadavg()[0]:.2f}"
                )
    for name, rows in results.items():
        print(  # noqa: T201
            name,
            "median worker CPU us/item",
            statistics.median(r[0] for r in rows),
            "median backend CPU us/item",
            statistics.median(r[1] for r in rows),
        )
