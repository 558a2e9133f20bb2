"""helpdesk.deliver_message: at most once, never lost (invariant 3)."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.utils import timezone

from helpdesk import tasks
from helpdesk.exceptions import MessageNotEditable
from helpdesk.models import Conversation, Message
from helpdesk.services import delivery
from helpdesk.services.replies import (
    cancel_scheduled_reply,
    post_reply,
    retry_failed_message,
)
from social.connectors import register_connector
from social.connectors.base import ConnectorError
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import DeliveryQueue, item, member, receive, reload
from tests.helpdesk.fakes import CrashAfterSend, FakeConnector, FileConnector
from tests.helpdesk.live import (
    ROOT,
    rabbitmq_vhost,
    real_broker,
    worker_subprocess,
)
from tests.redis_dbs import redis_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> Message:
    conversation = receive(account, item(external_id="post-1")).conversation
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        return post_reply(
            conversation, membership=member(tenant, agent), text="Sorry, checking now"
        ).message


@pytest.fixture(autouse=True)
def _retries_are_results() -> Iterator[None]:
    # Eager retries re-apply the task at once; let them end as results, not raises.
    conf = tasks.deliver_message.app.conf
    previous = conf.task_eager_propagates
    conf.task_eager_propagates = False
    yield
    conf.task_eager_propagates = previous


def state(message: Message) -> tuple[str, str | None, int, str]:
    with tenant_context(message.tenant_id):
        fresh = Message.objects.get(pk=message.pk)
    return fresh.delivery_status, fresh.external_id, fresh.attempts, fresh.last_error


def run(message: Message, *, task_id: str = "task-1") -> Any:
    return tasks.deliver_message.apply(
        args=(message.tenant_id, message.pk), task_id=task_id, throw=False
    )


def expire_claim(message: Message) -> None:
    """Let the current claim's lease run out (as if CLAIM_LEASE had passed)."""
    with tenant_context(message.tenant_id):
        Message.objects.filter(pk=message.pk).update(
            claimed_at=timezone.now() - delivery.CLAIM_LEASE - timedelta(seconds=1)
        )


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eager Celery runs a retry at once; so does its claim's hand-over."""
    monkeypatch.setattr(tasks, "backoff_seconds", lambda retries, retry_after: 0.0)


def make_due(message: Message) -> None:
    with tenant_context(message.tenant_id):
        Message.objects.filter(pk=message.pk).update(send_after=timezone.now())


def test_a_due_reply_is_sent_once_and_recorded(
    queued: Message, fake_platforms: type[FakeConnector], delivery_queue: DeliveryQueue
) -> None:
    assert delivery_queue.run_due() == ["sent"]
    status, external_id, attempts, error = state(queued)
    assert (status, attempts, error) == ("sent", 1, "")
    assert external_id is not None
    assert external_id.startswith("out-")
    [sent] = fake_platforms.sent
    assert (sent.text, sent.visibility, sent.in_reply_to, sent.client_ref) == (
        "Sorry, checking now",
        "public",
        "post-1",
        str(queued.client_ref),
    )
    assert run(queued, task_id="task-2").result == "skipped"
    assert len(fake_platforms.sent) == 1


def test_nothing_is_sent_during_the_hold(
    queued: Message, fake_platforms: type[FakeConnector]
) -> None:
    assert run(queued).result == "skipped"
    assert fake_platforms.sent == []
    assert state(queued)[0] == "scheduled"


def test_an_undone_reply_is_never_sent(
    queued: Message, tenant: Tenant, agent: User, fake_platforms: type[FakeConnector]
) -> None:
    with tenant_context(tenant):
        cancel_scheduled_reply(queued, membership=member(tenant, agent))
    make_due(queued)
    assert run(queued).result == "skipped"
    assert fake_platforms.sent == []
    assert state(queued)[0] == "cancelled"


def test_two_workers_racing_for_one_message_send_it_once(
    queued: Message, fake_platforms: type[FakeConnector]
) -> None:
    make_due(queued)
    assert run(queued, task_id="worker-a").result == "sent"
    assert run(queued, task_id="worker-b").result == "skipped"
    assert len(fake_platforms.sent) == 1


def test_transient_errors_are_retried_reconciling_before_each_resend(
    queued: Message,
    fake_platforms: type[FakeConnector],
    monkeypatch: pytest.MonkeyPatch,
    no_backoff: None,
) -> None:
    # Eager Celery runs each retry at once; in a worker it waits for the backoff.
    fake_platforms.behaviour.errors = [
        ConnectorError("upstream timeout", retry_after=7),
        ConnectorError("connection reset"),
    ]
    lookups: list[str] = []
    find = FakeConnector.find_delivery

    def spy(self: FakeConnector, account: Any, reply: Any) -> Any:
        lookups.append(reply.client_ref)
        return find(self, account, reply)

    monkeypatch.setattr(FakeConnector, "find_delivery", spy)
    make_due(queued)
    assert run(queued, task_id="task-r").result == "sent"
    assert len(fake_platforms.sent) == 1
    assert lookups == [str(queued.client_ref)] * 2
    assert state(queued)[0::2] == ("sent", 3)


def test_a_reply_that_keeps_failing_transiently_ends_failed(
    queued: Message, fake_platforms: type[FakeConnector], no_backoff: None
) -> None:
    fake_platforms.behaviour.errors = [
        ConnectorError(f"503 attempt {n}")
        for n in range(tasks.MAX_DELIVERY_RETRIES + 1)
    ]
    make_due(queued)
    assert run(queued, task_id="task-f").result == "failed"
    status, _external_id, attempts, error = state(queued)
    assert (status, attempts, error) == (
        "failed",
        tasks.MAX_DELIVERY_RETRIES + 1,
        f"503 attempt {tasks.MAX_DELIVERY_RETRIES}",
    )
    assert fake_platforms.sent == []
    assert reload(queued.conversation).public_reply_count == 0


def test_a_permanent_error_fails_visibly_and_frees_the_public_slot(
    queued: Message, tenant: Tenant, agent: User, fake_platforms: type[FakeConnector]
) -> None:
    fake_platforms.behaviour.errors = [
        ConnectorError("Status is a duplicate.", permanent=True, status=403)
    ]
    make_due(queued)
    assert run(queued).result == "failed"
    assert state(queued) == ("failed", None, 1, "Status is a duplicate.")
    assert reload(queued.conversation).public_reply_count == 0


def test_an_agent_retries_a_failed_reply(
    queued: Message,
    tenant: Tenant,
    agent: User,
    fake_platforms: type[FakeConnector],
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    fake_platforms.behaviour.errors = [ConnectorError("Token expired", permanent=True)]
    delivery_queue.run_due()
    assert state(queued)[0] == "failed"
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        retry_failed_message(queued, membership=member(tenant, agent))
    assert reload(queued.conversation).public_reply_count == 1
    assert delivery_queue.run_due(task_id="retry-1") == ["sent"]
    assert state(queued)[0] == "sent"
    with tenant_context(tenant), pytest.raises(MessageNotEditable):
        retry_failed_message(queued, membership=member(tenant, agent))


def test_retry_after_is_honoured() -> None:
    assert tasks.backoff_seconds(0, 120.0) == 120.0
    assert 1.6 <= tasks.backoff_seconds(0, None) <= 2.4
    assert 48.0 <= tasks.backoff_seconds(20, None) <= 72.0


def test_a_worker_dying_after_the_platform_accepted_does_not_send_twice(
    queued: Message, fake_platforms: type[FakeConnector]
) -> None:
    fake_platforms.behaviour.crash_after_send = True
    make_due(queued)
    with pytest.raises(CrashAfterSend):
        run(queued, task_id="task-k")
    assert state(queued)[0] == "sending"
    # acks_late + reject_on_worker_lost: the broker hands the same task out again.
    # While the lease lasts the first copy may still be running: hands off.
    assert run(queued, task_id="task-k").result == "skipped"
    expire_claim(queued)
    assert run(queued, task_id="task-k").result == "reconciled"
    assert len(fake_platforms.sent) == 1
    status, external_id, _attempts, _error = state(queued)
    assert (status, external_id) == ("sent", "found-0")


def test_a_worker_dying_before_the_platform_got_it_sends_once_on_redelivery(
    queued: Message, fake_platforms: type[FakeConnector]
) -> None:
    make_due(queued)
    with tenant_context(queued.tenant_id):
        claimed = delivery.claim_for_delivery(queued.pk, token="task-z")
    assert claimed is not None
    assert claimed.reconcile is False
    # The worker died here, before calling the platform; the task is redelivered
    # and takes the claim over once its lease is out.
    expire_claim(queued)
    assert run(queued, task_id="task-z").result == "sent"
    assert len(fake_platforms.sent) == 1
    assert state(queued)[0::2] == ("sent", 2)


def test_a_redelivered_copy_while_the_first_still_runs_does_not_send(
    queued: Message, fake_platforms: type[FakeConnector]
) -> None:
    # A blip of the worker's broker connection: the broker hands the same task to
    # another worker while the first copy is still about to send.
    make_due(queued)
    with tenant_context(queued.tenant_id):
        first = delivery.claim_for_delivery(queued.pk, token="task-b.first")
    assert first is not None

    assert run(queued, task_id="task-b").result == "skipped"

    assert fake_platforms.sent == []
    with tenant_context(queued.tenant_id):
        assert delivery.renew_claim(queued.pk, token="task-b.first") is True


def test_a_transient_failure_hands_the_claim_to_its_retry_when_it_is_due(
    queued: Message,
    fake_platforms: type[FakeConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_platforms.behaviour.errors = [ConnectorError("upstream timeout")]
    monkeypatch.setattr(tasks, "backoff_seconds", lambda retries, retry_after: 7.0)
    # Record the retry Celery is asked for instead of running it at once (eager).
    monkeypatch.setattr(tasks.deliver_message, "retry", lambda **options: Retry())
    make_due(queued)
    run(queued, task_id="task-t")
    with tenant_context(queued.tenant_id):
        claimed_at = Message.objects.get(pk=queued.pk).claimed_at
        assert delivery.stale_deliveries() == []
    assert claimed_at is not None
    hand_over = claimed_at + delivery.CLAIM_LEASE - timezone.now()
    assert timedelta(seconds=5) < hand_over <= timedelta(seconds=7)
    assert run(queued, task_id="task-t").result == "skipped"  # too early

    expire_claim(queued)  # the retry's time has come
    monkeypatch.undo()
    lookups: list[str] = []
    monkeypatch.setattr(
        FakeConnector,
        "find_delivery",
        lambda self, account, reply: lookups.append(reply.client_ref),
    )
    assert run(queued, task_id="task-t").result == "sent"
    assert lookups == [str(queued.client_ref)]
    assert len(fake_platforms.sent) == 1


def test_a_stale_claim_of_another_task_waits_for_its_lease(
    queued: Message, fake_platforms: type[FakeConnector]
) -> None:
    fake_platforms.behaviour.crash_after_send = True
    make_due(queued)
    with pytest.raises(CrashAfterSend):
        run(queued, task_id="task-old")
    assert run(queued, task_id="task-new").result == "skipped"
    with tenant_context(queued.tenant_id):
        Message.objects.filter(pk=queued.pk).update(
            claimed_at=timezone.now() - timedelta(minutes=5)
        )
        assert delivery.stale_deliveries() == [queued.pk]
    assert run(queued, task_id="task-new").result == "reconciled"
    assert len(fake_platforms.sent) == 1


KILLED_WORKER = """
import os, pathlib
import django
django.setup()
from social.connectors import register_connector
from tests.helpdesk.fakes import FileConnector
FileConnector.path = pathlib.Path(os.environ["EARSHOT_FILE_CONNECTOR"])
FileConnector.die_after_send = True
register_connector(FileConnector)
from helpdesk import tasks
from helpdesk.services import delivery
tasks.deliver_message.apply(args=({tenant_id}, {message_id}), task_id="killed-task")
print("not reached")
"""


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_process_neither_sends_twice_nor_loses_the_reply(
    tenant: Tenant, agent: User, account: SocialAccount, tmp_path: Path
) -> None:
    conversation = receive(account, item(external_id="post-9")).conversation
    with tenant_context(tenant):
        message = post_reply(
            conversation, membership=member(tenant, agent), text="We have rebooked you"
        ).message
    make_due(message)
    FileConnector.path = tmp_path / "platform.jsonl"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EARSHOT_FILE_CONNECTOR": str(FileConnector.path),
    }
    script = KILLED_WORKER.format(tenant_id=tenant.pk, message_id=message.pk)
    worker = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == -9, worker.stderr
    assert "not reached" not in worker.stdout
    assert len(FileConnector.path.read_text().splitlines()) == 1
    assert state(message)[0] == "sending"
    register_connector(FileConnector)
    FileConnector.die_after_send = False
    expire_claim(message)
    result = tasks.deliver_message.apply(
        args=(tenant.pk, message.pk), task_id="killed-task"
    ).result
    assert result == "reconciled"
    assert len(FileConnector.path.read_text().splitlines()) == 1
    status, external_id, attempts, _error = state(message)
    assert (status, external_id, attempts) == ("sent", "file-1", 2)
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=conversation.pk).public_reply_count == 1


def test_a_dead_attempts_claim_is_stale_after_the_lease_not_before(
    queued: Message,
) -> None:
    make_due(queued)
    with tenant_context(queued.tenant_id):
        assert delivery.claim_for_delivery(queued.pk, token="dead") is not None
        recent = timezone.now() - delivery.CLAIM_LEASE + timedelta(seconds=3)
        Message.objects.filter(pk=queued.pk).update(claimed_at=recent)
        assert delivery.stale_deliveries() == []
        assert delivery.claim_for_delivery(queued.pk, token="other") is None
        expired = timezone.now() - delivery.CLAIM_LEASE - timedelta(seconds=1)
        Message.objects.filter(pk=queued.pk).update(claimed_at=expired)
        assert delivery.stale_deliveries() == [queued.pk]
    # Lease plus one sweep interval: the 30 s promise, with room for the queue hop.
    sweep = settings.CELERY_BEAT_SCHEDULE["sweep-outboxes"]["schedule"]
    assert delivery.CLAIM_LEASE.total_seconds() + sweep <= 30
    # The lease outlasts the longest platform call it guards (see CLAIM_LEASE).
    assert delivery.CLAIM_LEASE.total_seconds() >= delivery.SEND_BUDGET + 5


def test_a_lost_scheduled_reply_is_handed_out_once_per_lease_not_every_sweep(
    queued: Message,
) -> None:
    with tenant_context(queued.tenant_id):
        Message.objects.filter(pk=queued.pk).update(
            send_after=timezone.now() - delivery.STALE_SCHEDULED - timedelta(seconds=1)
        )
        assert delivery.stale_deliveries() == [queued.pk]
        assert delivery.stale_deliveries() == []


def test_an_attempt_that_lost_its_claim_does_not_send(
    queued: Message, fake_platforms: type[FakeConnector]
) -> None:
    make_due(queued)
    with tenant_context(queued.tenant_id):
        assert delivery.claim_for_delivery(queued.pk, token="slow") is not None
        Message.objects.filter(pk=queued.pk).update(claim_token="taker")
        assert delivery.renew_claim(queued.pk, token="slow") is False
        assert delivery.renew_claim(queued.pk, token="taker") is True
    assert fake_platforms.sent == []


def test_an_early_duplicate_is_requeued_under_its_own_id(
    queued: Message,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    ids: list[str | None] = []
    monkeypatch.setattr(
        tasks.deliver_message,
        "apply_async",
        lambda args, eta=None, task_id=None, **kw: ids.append(task_id),
    )
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert run(queued, task_id="early-1").result == "skipped"
    assert ids == ["early-1"] * 3  # one copy per arrival, never more


# A worker whose platform call kills it (SIGKILL, the whole process) right after the
# platform accepted the reply; a second, healthy worker takes over.
KILLABLE_WORKER = """
import os, pathlib, sys
import django
django.setup()
from social.connectors import register_connector
from tests.helpdesk.fakes import FileConnector
FileConnector.path = pathlib.Path(os.environ["EARSHOT_FILE_CONNECTOR"])
FileConnector.die_after_send = os.environ["EARSHOT_DIE_AFTER_SEND"] == "1"
register_connector(FileConnector)
from helpdesk.celery import app
app.worker_main(sys.argv[1:])
"""
# The claim's lease (15 s, CLAIM_LEASE) plus one sweep period (10 s) plus the
# healthy worker's start and the broker's redelivery on a loaded CI machine (seen at
# 8 s after a takeover with two test processes and RabbitMQ on two cores).
TAKEOVER_LIMIT = 45.0


def _broker_url(broker: str) -> str:
    if broker == "rabbitmq":
        return rabbitmq_vhost()
    url = redis_url("scratch")
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_neither_sends_twice_nor_loses_the_reply(
    broker: str,
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    tmp_path: Path,
) -> None:
    """On RabbitMQ the broker hands the task to the next worker at once; on Redis it
    keeps it for visibility_timeout, and the beat sweep takes the claim over once
    its lease is out. Either way: within TAKEOVER_LIMIT, sent once."""
    conversation = receive(account, item(external_id="post-9")).conversation
    with tenant_context(tenant):
        message = post_reply(
            conversation, membership=member(tenant, agent), text="We have rebooked you"
        ).message
    make_due(message)
    platform = tmp_path / "platform.jsonl"
    url = _broker_url(broker)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": url,
        "EARSHOT_TEST_EAGER": "0",
        "EARSHOT_FILE_CONNECTOR": str(platform),
        "PYTHONPATH": str(ROOT),
    }
    sweep = settings.CELERY_BEAT_SCHEDULE["sweep-outboxes"]["schedule"]
    with real_broker(url):
        with worker_subprocess(
            {**env, "EARSHOT_DIE_AFTER_SEND": "1"},
            tmp_path / "doomed.log",
            name=f"doomed-{broker}",
            script=KILLABLE_WORKER,
        ) as doomed:
            tasks.deliver_message.app.send_task(
                "helpdesk.deliver_message",
                args=(tenant.pk, message.pk),
                task_id="killed-task",
            )
            doomed.wait(timeout=30)
        killed_at = time.monotonic()
        assert doomed.returncode == -9
        assert len(platform.read_text().splitlines()) == 1
        assert state(message)[0] == "sending"
        with worker_subprocess(
            {**env, "EARSHOT_DIE_AFTER_SEND": "0"},
            tmp_path / "healthy.log",
            name=f"healthy-{broker}",
            script=KILLABLE_WORKER,
        ):
            next_sweep = time.monotonic()
            while state(message)[0] != "sent":
                assert time.monotonic() - killed_at < TAKEOVER_LIMIT, state(message)
                if time.monotonic() >= next_sweep:  # what beat does
                    tasks.deliver_message.app.send_task("helpdesk.sweep_outboxes")
                    next_sweep += sweep
                time.sleep(0.2)
    assert len(platform.read_text().splitlines()) == 1
    status, external_id, _attempts, _error = state(message)
    assert (status, external_id) == ("sent", "file-1")
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=conversation.pk).public_reply_count == 1
