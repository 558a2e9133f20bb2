"""Reply delivery to the Sandbox over real HTTP (issue 12 item 5, DESIGN.md section 6:
at least 200 replies/s per worker; at 100 replies/s offered, the delivery lag p99
within the hold + 2 s).

The stack, all on 127.0.0.1: the Sandbox network served by a real uvicorn server
with SANDBOX_WORKERS processes (its HTTP API, bearer tokens, rate limit per token,
idempotency keys), a private redis-server as the broker, and one real
`celery worker -P solo` process (one worker process) running
helpdesk.deliver_message from the queue, as in production.
The workspace has ACCOUNTS Sandbox accounts (a reply goes out through its
conversation's account; each account keeps the Sandbox's per-token limit).

Figures:
- throughput: N due replies, one task each, published at once; replies/s from the
  first publish to the last one recorded `sent`. Once with the one-reply-per-task
  path (DELIVERY_BATCH_SIZE=1, DELIVERY_CONCURRENCY=1: the path before batching)
  on fewer replies, then batched;
- lag: replies queued at OFFERED/s for OFFERED_SECONDS with a hold of HOLD
  seconds, each task's ETA at the end of its hold, as post_reply queues them;
  lag = recorded sent - queued;
- the Sandbox alone (the ceiling, same run): SANDBOX_ALONE posts straight from
  this process through the connector's send and social.sending's pool of
  DELIVERY_CONCURRENCY threads, with no Earshot database work and no queue: what
  the platform and the HTTP client manage on this machine, which a worker cannot
  beat.
"""

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from helpdesk import tasks
from helpdesk.models import Conversation, Message
from helpdesk.services.inbound import record_inbound_message
from social import http as social_http
from social import sending
from social.connectors import get_connector
from social.connectors.base import Author, InboundItem, OutboundReply
from social.models import SocialAccount, connector_ref
from social.sandbox import network
from social.sandbox.models import App, Person, Post
from social.sandbox.setup import connect_demo_account, register_earshot_app
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.factories import make_user, make_workspace, membership_of
from tests.faults.stack import PrivateRedis
from tests.helpdesk.live import ROOT, real_broker, worker_subprocess
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)
from tests.perf.server import uvicorn_server

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

ACCOUNTS = 20
CONVERSATIONS_PER_ACCOUNT = 10
REPLIES = 2000
REPLIES_BEFORE = 300
OFFERED = 100  # replies per second
OFFERED_SECONDS = 10
HOLD = 5  # seconds (a brand's send_hold_seconds)
TARGET_PER_SECOND = 200.0
SANDBOX_WORKERS = (
    4  # the Sandbox's uvicorn processes (a platform is not the bottleneck)
)
WAIT_LIMIT = float(os.environ.get("EARSHOT_BENCH_WAIT", "180"))
SANDBOX_ALONE = 1000


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _workspace(sandbox_url: str) -> tuple[Tenant, list[Conversation]]:
    """A tenant with ACCOUNTS Sandbox accounts and customer posts to answer."""
    owner = make_user("dana@delivery.example", display_name="Dana")
    tenant = make_workspace("Delivery Bench", owner=owner)
    membership = membership_of(tenant, owner)
    customers = [
        Person.objects.get_or_create(
            handle=f"bench_customer_{n}", defaults={"name": f"Customer {n}"}
        )[0]
        for n in range(CONVERSATIONS_PER_ACCOUNT)
    ]
    conversations = []
    with tenant_context(tenant):
        Brand.objects.update(send_hold_seconds=HOLD)
        brand = Brand.objects.get()
        handles = [f"bench_brand_{index}" for index in range(ACCOUNTS)]
        ids = [connect_demo_account(membership, brand, h).pk for h in handles]
        SocialAccount.objects.filter(pk__in=ids).update(
            base_url=f"{sandbox_url}/sandbox"
        )
        # The customers' posts reach Earshot through record_inbound_message below,
        # not through webhooks.
        App.objects.filter(pk=register_earshot_app().pk).update(webhook_url="")
        for handle, account_id in zip(handles, ids, strict=True):
            account = SocialAccount.objects.select_related("tenant", "brand").get(
                pk=account_id
            )
            for customer in customers:
                post, _ = network.create_post(customer, f"@{handle} where is my bag?")
                inbound = InboundItem(
                    platform="sandbox",
                    external_id=str(post.pk),
                    author=Author(external_id=str(customer.pk), handle=customer.handle),
                    text=post.text,
                    created_at=post.created_at,
                    visibility="public",
                    kind="post",
                    thread_ref=str(post.pk),
                    mentions_account=True,
                )
                conversations.append(
                    record_inbound_message(account, inbound).message.conversation
                )
    return tenant, conversations


def _queue(
    tenant: Tenant,
    conversations: list[Conversation],
    count: int,
    *,
    hold: float,
    start: int,
) -> list[tuple[int, object]]:
    """`count` scheduled public replies, round robin over the conversations, due
    after `hold` seconds; returns (message id, send_after)."""
    now = timezone.now()
    send_after = now + timedelta(seconds=hold)
    with tenant_context(tenant):
        rows = Message.objects.bulk_create(
            [
                Message(
                    tenant=tenant,
                    conversation=conversation,
                    account_id=conversation.social_account_id,
                    platform="sandbox",
                    direction=Message.Direction.OUT,
                    visibility=Message.Visibility.PUBLIC,
                    kind=Message.Kind.REPLY,
                    text=f"Sorry about that, we are on it (reply {start + n})",
                    delivery_status=Message.DeliveryStatus.SCHEDULED,
                    send_after=send_after,
                    created_at=now,
                    client_ref=uuid.uuid4(),
                )
                for n, conversation in (
                    (n, conversations[(start + n) % len(conversations)])
                    for n in range(count)
                )
            ]
        )
    return [(row.pk, send_after) for row in rows]


def _publish(tenant: Tenant, queued: list[tuple[int, object]], *, eta: bool) -> None:
    for message_id, send_after in queued:
        tasks.deliver_message.apply_async(
            (tenant.pk, message_id), eta=send_after if eta else None
        )


def _statuses(tenant: Tenant, ids: list[int]) -> dict[str, int]:
    with tenant_context(tenant):
        return {
            row["delivery_status"]: row["n"]
            for row in Message.objects.filter(pk__in=ids)
            .values("delivery_status")
            .annotate(n=Count("pk"))
        }


def _wait_all_sent(tenant: Tenant, ids: list[int]) -> float:
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        if _statuses(tenant, ids).get("sent", 0) == len(ids):
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"not all sent: {_statuses(tenant, ids)}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _worker(
    log_dir: Path, broker: str, *, batch: int, pool: int, name: str
) -> Iterator[int]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.perf.delivery_settings",
        "CELERY_BROKER_URL": broker,
        "EARSHOT_TEST_EAGER": "0",
        "EARSHOT_DELIVERY_BATCH_SIZE": str(batch),
        "EARSHOT_DELIVERY_CONCURRENCY": str(pool),
        "PYTHONPATH": str(ROOT),
    }
    with worker_subprocess(env, log_dir / f"{name}.log", name=name) as worker:
        yield worker.pid


def _throughput(
    tenant: Tenant, conversations: list[Conversation], count: int, start: int
) -> tuple[float, list[int]]:
    queued = _queue(tenant, conversations, count, hold=-1, start=start)
    ids = [message_id for message_id, _ in queued]
    began = time.monotonic()
    _publish(tenant, queued, eta=False)
    ended = _wait_all_sent(tenant, ids)
    return count / (ended - began), ids


def _sandbox_alone(tenant: Tenant, conversations: list[Conversation]) -> float:
    """Posts/s of SANDBOX_ALONE replies sent straight to the Sandbox (see the
    module's docstring), over a client configured as the worker's."""
    with tenant_context(tenant):
        refs = {
            account.pk: connector_ref(account)
            for account in SocialAccount.objects.all()
        }
    connector = get_connector("sandbox")
    calls = []
    for n in range(SANDBOX_ALONE):
        conversation = conversations[n % len(conversations)]
        assert conversation.social_account_id is not None
        ref = refs[conversation.social_account_id]
        reply = OutboundReply(
            client_ref=str(uuid.uuid4()),
            text=f"Straight to the platform ({n})",
            visibility="public",
            in_reply_to=conversation.public_thread_ref,
        )
        calls.append(sending.Call(ref, partial(connector.send, ref, reply)))
    social_http.install_client(
        httpx.Client(
            timeout=social_http.TIMEOUT,
            headers={"User-Agent": social_http.USER_AGENT},
            limits=social_http.LIMITS,
        )
    )
    began = time.monotonic()
    outcomes = sending.run_all(calls, end=began + WAIT_LIMIT)
    elapsed = time.monotonic() - began
    errors = [outcome.error for outcome in outcomes if outcome.error is not None]
    assert not errors, errors[:3]
    return SANDBOX_ALONE / elapsed


def _sent_once(ids: list[int], tenant: Tenant) -> tuple[int, int]:
    """(replies the Sandbox holds for these messages, replays it saw)."""
    with tenant_context(tenant):
        refs = [
            str(ref)
            for ref in Message.objects.filter(pk__in=ids).values_list(
                "client_ref", flat=True
            )
        ]
    posts = Post.objects.filter(idempotency_key__in=refs)
    return posts.count(), sum(posts.values_list("replays", flat=True))


def test_delivery_throughput_and_lag(tmp_path: Path) -> None:
    logs = Path(os.environ.get("EARSHOT_BENCH_LOGS", str(tmp_path)))
    logs.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(logs)
    redis_server.start()
    broker = redis_server.url(0)
    notes = [
        f"{ACCOUNTS} Sandbox accounts, {ACCOUNTS * CONVERSATIONS_PER_ACCOUNT} "
        "conversations; one `celery worker -P solo` process; the Sandbox in "
        f"uvicorn --workers {SANDBOX_WORKERS}; a private redis-server as the broker",
    ]
    figures: list[Figure] = []
    try:
        with (
            uvicorn_server(
                logs, workers=SANDBOX_WORKERS, env={"CELERY_BROKER_URL": broker}
            ) as base,
            real_broker(broker),
        ):
            tenant, conversations = _workspace(base)
            with override_settings(DELIVERY_CONCURRENCY=32):
                alone = _sandbox_alone(tenant, conversations)
            notes.append(
                f"the Sandbox alone: {SANDBOX_ALONE} posts from this process, 32 "
                f"threads, no Earshot database work; {_load()}"
            )
            figures.append(Figure("posts/s, the Sandbox alone (ceiling)", alone, "/s"))

            with _worker(logs, broker, batch=1, pool=1, name="before") as pid:
                cpu = _cpu_seconds(pid)
                before, before_ids = _throughput(
                    tenant, conversations, REPLIES_BEFORE, start=0
                )
                cpu = _cpu_seconds(pid) - cpu
            notes.append(
                f"before (one reply per task, DELIVERY_BATCH_SIZE=1, "
                f"DELIVERY_CONCURRENCY=1): {REPLIES_BEFORE} replies; worker CPU "
                f"{cpu / REPLIES_BEFORE * 1000:.2f} ms per reply; {_load()}"
            )
            figures.append(Figure("replies/s per worker, before", before, "/s"))

            with _worker(logs, broker, batch=100, pool=32, name="after") as pid:
                cpu = _cpu_seconds(pid)
                after, after_ids = _throughput(
                    tenant, conversations, REPLIES, start=REPLIES_BEFORE
                )
                cpu = _cpu_seconds(pid) - cpu
                notes.append(
                    f"after (DELIVERY_BATCH_SIZE=100, DELIVERY_CONCURRENCY=32): "
                    f"{REPLIES} replies; worker CPU "
                    f"{cpu / REPLIES * 1000:.2f} ms per reply; {_load()}"
                )
                figures.append(
                    Figure(
                        "replies/s per worker, batched",
                        after,
                        "/s",
                        TARGET_PER_SECOND,
                        higher_is_better=True,
                    )
                )

                lag_ids: list[int] = []
                offered_start = time.monotonic()
                tick = 0.05
                per_tick = round(OFFERED * tick)
                while time.monotonic() - offered_start < OFFERED_SECONDS:
                    queued = _queue(
                        tenant,
                        conversations,
                        per_tick,
                        hold=HOLD,
                        start=REPLIES_BEFORE + REPLIES + len(lag_ids),
                    )
                    _publish(tenant, queued, eta=True)
                    lag_ids += [message_id for message_id, _ in queued]
                    next_tick = offered_start + tick * (len(lag_ids) // per_tick)
                    time.sleep(max(0.0, next_tick - time.monotonic()))
                offered = len(lag_ids) / (time.monotonic() - offered_start)
                _wait_all_sent(tenant, lag_ids)
                with tenant_context(tenant):
                    lags = [
                        (sent - created).total_seconds()
                        for created, sent in Message.objects.filter(
                            pk__in=lag_ids
                        ).values_list("created_at", "sent_at")
                        if sent is not None
                    ]
                notes.append(
                    f"lag: {len(lag_ids)} replies offered at {offered:.1f}/s for "
                    f"{OFFERED_SECONDS} s, hold {HOLD} s; {_load()}"
                )
                figures += latency_figures(
                    "delivery lag (queued to sent)",
                    lags,
                    {99: (HOLD + 2) * 1000.0},
                )

            all_ids = before_ids + after_ids + lag_ids
            published, replays = _sent_once(all_ids, tenant)
            notes.append(
                f"the Sandbox holds {published} replies for {len(all_ids)} messages, "
                f"{replays} replayed sends"
            )
            assert (published, replays) == (len(all_ids), 0)
            assert _statuses(tenant, all_ids) == {"sent": len(all_ids)}
    finally:
        redis_server.stop()
    print_report(
        "reply delivery to the Sandbox over HTTP",
        machine_facts(conninfo()),
        notes,
        figures,
    )
