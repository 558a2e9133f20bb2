"""Inbound processing throughput of one process on Postgres, as the runtime role.

Stored webhook deliveries (one item each) of 2,000 items from 200 contacts over 600
threads (so most are follow-ups), processed in the same run two ways, on the same
shape of data:
- one at a time: `process_one_webhook_event`, one transaction per item (the path
  before batching);
- batched: `process_webhook_event` claiming up to BATCH events per transaction,
  grouped by tenant, set-based (social.batch_ingest).
Events are pushed on commit over channels-redis pub/sub. Every item has its own
text, so each is read for language and sentiment (until 2026-12-06 all 2,000 had
one text and the reading came from its cache). Budget (DESIGN.md section 6):
>= 1,000 events/s per worker process, counted over the worker's calls (the
benchmark's bookkeeping between batches is printed apart). Prints the statements
per batch and the load average.
"""

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from helpdesk.models import Conversation, Event, Message
from social.connectors.base import TokenSet
from social.ingest import process_one_webhook_event, process_webhook_event
from social.models import SocialAccount, WebhookEvent
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.factories import add_member, make_user, make_workspace, membership_of
from tests.helpdesk.live import REDIS_LAYERS
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)
from tests.statements import count_statements

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

ITEMS = 2000
CONTACTS = 200
THREADS = 600
AGENTS = 10
BATCH = 100
TARGET_PER_SECOND = 1000.0
ACCOUNT_ID = "bench-acct"


def store_events(prefix: str, count: int = ITEMS) -> list[int]:
    """`count` stored Sandbox deliveries, one post each (a mention opens or
    follows up its thread), received a minute ago."""
    now = timezone.now() - timedelta(minutes=1)
    bodies: list[tuple[str, dict[str, Any]]] = []
    for n in range(count):
        post_id = f"{prefix}-p-{n}"
        root = f"{prefix}-t-{n % THREADS}"
        body = {
            "event_id": post_id,
            "type": "post.created",
            "for_account": {"id": ACCOUNT_ID, "handle": "acmeair"},
            "mentions_account": True,
            "post": {
                "id": post_id,
                # Each text its own (its number), as customers' are: the
                # language and sentiment reading (helpdesk.sentiment caches
                # the last 256 texts) costs what it costs in production.
                "text": f"@acmeair my flight {n} is delayed again, what is going on?",
                "author": {
                    "id": f"{prefix}-cust-{n % CONTACTS}",
                    "handle": f"c{n % CONTACTS}",
                    "name": f"C{n % CONTACTS}",
                    "followers": n % 5000,
                },
                "in_reply_to": None if n < THREADS else root,
                "root": root,
                "created_at": (now + timedelta(milliseconds=n)).isoformat(),
            },
        }
        bodies.append((post_id, body))
    return store_bodies(bodies, now)


def open_all_hours_with_sandbox(tenant: Tenant, owner: User, account_id: str) -> None:
    """The workspace's brand open every hour (the away reply is its own path,
    measured elsewhere) with a Sandbox account `account_id` connected."""
    with tenant_context(tenant):
        brand = Brand.objects.get()
        brand.business_hours = {}
        brand.save(update_fields=["business_hours"])
        connect_account(
            membership_of(tenant, owner),
            brand=brand,
            platform="sandbox",
            tokens=TokenSet(access_token="t", account_external_id=account_id),
        )


def store_bodies(bodies: list[tuple[str, dict[str, Any]]], now: datetime) -> list[int]:
    """Sandbox deliveries (event key, body) stored as received, the n-th at
    `now` + n ms; their ids in order."""
    rows = [
        WebhookEvent(
            platform="sandbox",
            event_key=key,
            body=json.dumps(body).encode(),
            headers_digest="bench",
            received_at=now + timedelta(milliseconds=n),
        )
        for n, (key, body) in enumerate(bodies)
    ]
    return [row.pk for row in WebhookEvent.objects.bulk_create(rows)]


def one_at_a_time(event_ids: list[int]) -> list[float]:
    seconds = []
    for event_id in event_ids:
        started = perf_counter()
        assert process_one_webhook_event(event_id) == "processed"
        seconds.append(perf_counter() - started)
    return seconds


def batched(event_ids: list[int], statements: list[int]) -> list[float]:
    """Process in batches as the worker does: each task claims its own event and
    the oldest waiting ones; later tasks find theirs processed."""
    seconds = []
    remaining = list(event_ids)
    while remaining:
        started = perf_counter()
        with count_statements() as seen:
            assert process_webhook_event(remaining[0], batch_size=BATCH) == "processed"
        seconds.append(perf_counter() - started)
        statements.append(len(seen))
        done = set(
            WebhookEvent.objects.filter(
                pk__in=remaining[: BATCH * 2], status="processed"
            ).values_list("pk", flat=True)
        )
        remaining = [pk for pk in remaining if pk not in done]
    return seconds


def counts(tenant: Tenant, prefix: str) -> tuple[int, int, int]:
    """Conversations, messages and events of one path's items."""
    with tenant_context(tenant):
        conversations = Conversation.objects.filter(
            public_thread_ref__startswith=f"{prefix}-"
        )
        messages = Message.objects.filter(external_id__startswith=f"{prefix}-")
        return (
            conversations.count(),
            messages.count(),
            Event.objects.filter(
                payload__conversation_id__in=list(
                    conversations.values_list("pk", flat=True)
                )
            ).count(),
        )


def run_timed(run: Callable[[], list[float]]) -> tuple[float, list[float]]:
    started = perf_counter()
    seconds = run()
    return perf_counter() - started, seconds


def test_ingest_throughput_batched_against_one_at_a_time() -> None:
    owner = make_user()
    tenant = make_workspace("Ingest Bench", owner=owner)
    for n in range(AGENTS):
        add_member(tenant, make_user(f"agent{n}@ingest.example"), Membership.Role.AGENT)
    open_all_hours_with_sandbox(tenant, owner, ACCOUNT_ID)
    with tenant_context(tenant):
        assert SocialAccount.objects.count() == 1

    with override_settings(CHANNEL_LAYERS=REDIS_LAYERS):
        one_at_a_time(store_events("warm", 50))
        single_ids = store_events("one")
        single = one_at_a_time(single_ids)
        batch_ids = store_events("batch")
        statements: list[int] = []
        batch_wall, per_batch = run_timed(lambda: batched(batch_ids, statements))

    rows = counts(tenant, "batch")
    # The same data through both paths leaves the same rows.
    assert rows == counts(tenant, "one") == (THREADS, ITEMS, 2 * ITEMS)
    assert WebhookEvent.objects.exclude(status="processed").count() == 0
    print_report(
        "inbound throughput per worker process: batched against one at a time "
        "(stored webhook deliveries, Postgres, runtime role)",
        machine_facts(conninfo()),
        [
            f"{ITEMS} deliveries of one item each per path, {CONTACTS} contacts, "
            f"{THREADS} threads, {AGENTS + 1} members, events pushed on commit over "
            f"channels-redis pub/sub; batches of up to {BATCH} events; a text of "
            "its own per item (each read for language and sentiment)",
            f"rows per path: {rows[1]} messages in {rows[0]} conversations, "
            f"{rows[2]} events",
            f"statements per batch (BEGIN and COMMIT included): "
            f"{min(statements)}..{max(statements)}, mean "
            f"{sum(statements) / len(statements):.1f} for {len(statements)} batches "
            f"({sum(statements) / ITEMS:.2f} per item)",
            # The items/s below count the worker's calls only: between batches
            # the benchmark reads which events are done (a scan of the events
            # on these unanalyzed tables), which no worker does.
            f"batched, wall clock with the benchmark's own bookkeeping: "
            f"{ITEMS / batch_wall:.1f} items/s",
            f"load average after the run: {os.getloadavg()[0]:.2f}",
        ],
        [
            Figure(
                "one at a time: items/s",
                ITEMS / sum(single),
                "/s",
                TARGET_PER_SECOND,
                higher_is_better=True,
            ),
            *latency_figures("one at a time: per item", single),
            Figure(
                "batched: items/s",
                ITEMS / sum(per_batch),
                "/s",
                TARGET_PER_SECOND,
                higher_is_better=True,
            ),
            Figure("batched / one at a time", sum(single) / sum(per_batch), "x"),
            *latency_figures(f"batched: per batch of {BATCH}", per_batch),
        ],
    )
