"""Batched, concurrent delivery (issue 12 item 5) keeps invariant 3: one task
claims its reply and the tenant's other due replies (committed `sending` before any
platform call), sends them concurrently within each account's rate limit, records
the outcomes together, and hands each transient failure a retry of its own."""

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry
from django.test import override_settings
from django.utils import timezone

from helpdesk import tasks
from helpdesk.models import Conversation, Message
from helpdesk.services import delivery
from helpdesk.services.replies import post_reply
from social.connectors.base import (
    AccountRef,
    ConnectorError,
    DeliveryResult,
    OutboundReply,
    SendLimit,
)
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import item, make_account, member, receive, reload
from tests.helpdesk.fakes import CrashAfterSend, FakeConnector

pytestmark = pytest.mark.django_db

Row = tuple[str, str | None, int, str]


@pytest.fixture(autouse=True)
def _retries_are_results() -> Iterator[None]:
    conf = tasks.deliver_message.app.conf
    previous = conf.task_eager_propagates
    conf.task_eager_propagates = False
    yield
    conf.task_eager_propagates = previous


class Script:
    """Per reply text: an error to raise instead of sending, or a crash after it."""

    def __init__(self) -> None:
        self.errors: dict[str, ConnectorError] = {}
        self.crash_after: set[str] = set()
        self.limit: SendLimit | None = None
        self.sent_at: dict[str, float] = {}
        self.lookups: list[str] = []
        self.lock = threading.Lock()


@pytest.fixture
def script(
    fake_platforms: type[FakeConnector], monkeypatch: pytest.MonkeyPatch
) -> Script:
    scripted = Script()
    send, find = FakeConnector.send, FakeConnector.find_delivery

    def scripted_send(
        self: FakeConnector, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult:
        error = scripted.errors.pop(reply.text, None)
        if error is not None:
            raise error
        with scripted.lock:
            result = send(self, account, reply)
            scripted.sent_at[reply.text] = time.time()
        if reply.text in scripted.crash_after:
            scripted.crash_after.discard(reply.text)
            raise CrashAfterSend
        return result

    def scripted_find(
        self: FakeConnector, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        scripted.lookups.append(reply.text)
        return find(self, account, reply)

    monkeypatch.setattr(FakeConnector, "send", scripted_send)
    monkeypatch.setattr(FakeConnector, "find_delivery", scripted_find)
    monkeypatch.setattr(
        FakeConnector, "send_limit", lambda self, account, reply: scripted.limit
    )
    return scripted


def due_replies(
    tenant: Tenant,
    agent: User,
    accounts: list[SocialAccount],
    count: int,
    *,
    text: str = "reply",
) -> list[Message]:
    """`count` replies in conversations of their own, spread over `accounts`, all
    due now, oldest first ("reply 0", "reply 1", ...)."""
    messages = []
    for n in range(count):
        account = accounts[n % len(accounts)]
        conversation = receive(
            account, item(external_id=f"batch-post-{account.pk}-{n}", author=f"c{n}")
        ).conversation
        with tenant_context(tenant):
            messages.append(
                post_reply(
                    conversation, membership=member(tenant, agent), text=f"{text} {n}"
                ).message
            )
    with tenant_context(tenant):
        for n, message in enumerate(messages):
            Message.objects.filter(pk=message.pk).update(
                send_after=timezone.now() - timedelta(seconds=count - n)
            )
    return messages


def run(message: Message, *, task_id: str = "task-1") -> Any:
    return tasks.deliver_message.apply(
        args=(message.tenant_id, message.pk), task_id=task_id, throw=False
    ).result


def rows(messages: list[Message]) -> list[Row]:
    with tenant_context(messages[0].tenant_id):
        found = {
            m.pk: (m.delivery_status, m.external_id, m.attempts, m.last_error)
            for m in Message.objects.filter(pk__in=[m.pk for m in messages])
        }
    return [found[m.pk] for m in messages]


def statuses(messages: list[Message]) -> list[str]:
    return [row[0] for row in rows(messages)]


def expire_claims(messages: list[Message]) -> None:
    with tenant_context(messages[0].tenant_id):
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            claimed_at=timezone.now() - delivery.CLAIM_LEASE - timedelta(seconds=1)
        )


@pytest.fixture(autouse=True)
def _fresh_account_ids(account: SocialAccount) -> None:
    """Rate-limit windows are counted in the (shared) cache by the account's
    platform id: a new one per test."""
    with tenant_context(account.tenant_id):
        SocialAccount.objects.filter(pk=account.pk).update(
            external_id=f"batch-{uuid.uuid4().hex}"
        )


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[int, int], Any]]:
    """The retries handed to other replies' own tasks: (args, options)."""
    handed: list[tuple[tuple[int, int], Any]] = []
    monkeypatch.setattr(
        tasks.deliver_message,
        "apply_async",
        lambda args, **options: handed.append((tuple(args), options)),
    )
    return handed


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of the running task's own retries, recorded instead of raised
    as Celery's Retry (which the task re-raises)."""
    options_seen: list[dict[str, Any]] = []

    def retry(**options: Any) -> Retry:
        options_seen.append(options)
        return Retry()

    monkeypatch.setattr(tasks.deliver_message, "retry", retry)
    return options_seen


def test_one_task_sends_the_tenants_due_replies_concurrently_and_once(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    other = make_account(tenant, handle="acmeair_help")
    messages = due_replies(tenant, agent, [account, other], 6)

    assert run(messages[3]) == "sent"

    assert sorted(reply.text for reply in FakeConnector.sent) == [
        f"reply {n}" for n in range(6)
    ]
    assert [(s, a, e) for s, _x, a, e in rows(messages)] == [("sent", 1, "")] * 6
    assert len({row[1] for row in rows(messages)}) == 6
    # Their own tasks come later and find nothing to do.
    assert [run(m, task_id=f"own-{m.pk}") for m in messages] == ["skipped"] * 6
    assert len(FakeConnector.sent) == 6
    assert script.lookups == []


def test_the_batch_is_bounded_and_takes_the_oldest_due_first(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    messages = due_replies(tenant, agent, [account], 5)
    with override_settings(DELIVERY_BATCH_SIZE=3):
        assert run(messages[4]) == "sent"
    assert statuses(messages) == ["sent", "sent", "scheduled", "scheduled", "sent"]


def test_a_reply_not_yet_due_or_claimed_elsewhere_stays_out_of_the_batch(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    with tenant_context(tenant):
        Message.objects.filter(pk=messages[1].pk).update(
            send_after=timezone.now() + timedelta(seconds=20)
        )
        assert delivery.claim_for_delivery(messages[2].pk, token="other") is not None
    assert run(messages[0]) == "sent"
    assert statuses(messages) == ["sent", "scheduled", "sending"]
    assert [reply.text for reply in FakeConnector.sent] == ["reply 0"]


def test_a_crash_between_claim_and_send_sends_nothing_twice(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    # A worker claimed the batch (committed) and died before any platform call.
    with tenant_context(tenant):
        plans = delivery.claim_batch(messages[0].pk, token="dead", limit=10)
    assert [plan.message_id for plan in plans] == [m.pk for m in messages]
    assert statuses(messages) == ["sending"] * 3

    # While the dead claim's lease lasts, nothing is sent, by nobody.
    assert [run(m, task_id=f"early-{m.pk}") for m in messages] == ["skipped"] * 3
    assert FakeConnector.sent == []

    # Then the first of their own tasks (the sweep's) takes the three over in one
    # batch, asks the platform about each first, and sends each once.
    expire_claims(messages)
    assert [run(m, task_id=f"sweep-{m.pk}") for m in messages] == [
        "sent",
        "skipped",
        "skipped",
    ]
    assert sorted(script.lookups) == ["reply 0", "reply 1", "reply 2"]
    assert sorted(r.text for r in FakeConnector.sent) == [
        "reply 0",
        "reply 1",
        "reply 2",
    ]
    assert [(s, a) for s, _x, a, _e in rows(messages)] == [("sent", 2)] * 3


def test_a_crash_after_a_send_in_a_batch_is_reconciled_not_resent(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    script.crash_after = {"reply 1"}
    with pytest.raises(CrashAfterSend):
        tasks.deliver_message.apply(
            args=(tenant.pk, messages[0].pk), task_id="crashing", throw=True
        )
    # Nothing was recorded: the worker died with the batch.
    assert statuses(messages) == ["sending"] * 3
    sent_before = sorted(r.text for r in FakeConnector.sent)
    assert sent_before == ["reply 0", "reply 1", "reply 2"]

    expire_claims(messages)
    assert [run(m, task_id=f"sweep-{m.pk}") for m in messages] == [
        "reconciled",
        "skipped",
        "skipped",
    ]
    assert sorted(script.lookups) == ["reply 0", "reply 1", "reply 2"]
    assert len(FakeConnector.sent) == 3
    assert [row[0] for row in rows(messages)] == ["sent"] * 3
    assert sorted(row[1] or "" for row in rows(messages)) == [
        "found-0",
        "found-1",
        "found-2",
    ]


def test_a_rate_limited_account_waits_for_its_window_and_does_not_fail(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    script.limit = SendLimit(2, 1, "api")
    messages = due_replies(tenant, agent, [account], 5)
    started = time.time()

    assert run(messages[0]) == "sent"

    assert [(s, a, e) for s, _x, a, e in rows(messages)] == [("sent", 1, "")] * 5
    assert len(FakeConnector.sent) == 5
    # Two per one-second window: five sends span three windows, so the last went
    # out more than a second after the first (it waited, twice).
    moments = sorted(script.sent_at.values())
    assert len(moments) == 5
    assert moments[-1] - moments[0] > 1.0
    assert time.time() - started < delivery.SEND_BUDGET


def test_a_rate_limit_longer_than_the_send_budget_hands_the_reply_to_a_retry(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    script: Script,
    retries: list[tuple[tuple[int, int], Any]],
) -> None:
    script.limit = SendLimit(2, 10**7, "api")  # the window outlasts the budget
    messages = due_replies(tenant, agent, [account], 3)

    # One call at a time, so which reply finds the window used up is certain.
    with override_settings(DELIVERY_CONCURRENCY=1):
        assert run(messages[0]) == "sent"

    assert sorted(r.text for r in FakeConnector.sent) == ["reply 0", "reply 1"]
    waiting = messages[2]
    assert [row[0] for row in rows(messages)] == ["sent", "sent", "sending"]
    status, external_id, attempts, error = rows([waiting])[0]
    assert (status, external_id, attempts, error) == (
        "sending",
        None,
        1,
        "The account's rate limit on the platform is used up for now.",
    )
    [(args, options)] = retries
    assert args == (tenant.pk, waiting.pk)
    assert options["retries"] == 1
    assert options["countdown"] > delivery.SEND_BUDGET
    # Its lease runs out when the retry is due, not before: the sweep leaves it.
    with tenant_context(tenant):
        assert delivery.stale_deliveries() == []


def test_a_429_in_a_batch_retries_that_reply_after_retry_after(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    script: Script,
    retries: list[tuple[tuple[int, int], Any]],
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    script.errors["reply 1"] = ConnectorError(
        "Too Many Requests", retry_after=30, status=429
    )
    script.errors["reply 2"] = ConnectorError("Bad Gateway", status=502)

    assert run(messages[0]) == "sent"

    assert [(s, a, e) for s, _x, a, e in rows(messages)] == [
        ("sent", 1, ""),
        ("sending", 1, "Too Many Requests"),
        ("sending", 1, "Bad Gateway"),
    ]
    assert [r.text for r in FakeConnector.sent] == ["reply 0"]
    by_message = {args[1]: options for args, options in retries}
    assert set(by_message) == {messages[1].pk, messages[2].pk}
    assert by_message[messages[1].pk]["countdown"] == 30.0
    assert by_message[messages[1].pk]["retries"] == 1
    assert 1.6 <= by_message[messages[2].pk]["countdown"] <= 2.4
    with tenant_context(tenant):
        lease = {
            m.pk: m.claimed_at
            for m in Message.objects.filter(pk__in=[messages[1].pk, messages[2].pk])
        }
    claimed_at = lease[messages[1].pk]
    assert claimed_at is not None
    hand_over = claimed_at + delivery.CLAIM_LEASE - timezone.now()
    assert timedelta(seconds=28) < hand_over <= timedelta(seconds=30)

    # The first retry due takes both claims over, reconciles, then sends each
    # once; the other retry finds nothing left to do.
    expire_claims(messages[1:])
    assert [
        tasks.deliver_message.apply(
            args=args, task_id=f"retry-{args[1]}", retries=options["retries"]
        ).result
        for args, options in retries
    ] == ["sent", "skipped"]
    assert sorted(script.lookups) == ["reply 1", "reply 2"]
    assert sorted(r.text for r in FakeConnector.sent) == [
        "reply 0",
        "reply 1",
        "reply 2",
    ]
    assert [(s, a, e) for s, _x, a, e in rows(messages)] == [
        ("sent", 1, ""),
        ("sent", 2, ""),
        ("sent", 2, ""),
    ]


def test_the_tasks_own_429_is_its_retry_with_retry_after(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    script: Script,
    asked: list[dict[str, Any]],
    retries: list[tuple[tuple[int, int], Any]],
) -> None:
    messages = due_replies(tenant, agent, [account], 2)
    script.errors["reply 0"] = ConnectorError("slow down", retry_after=45, status=429)
    tasks.deliver_message.apply(
        args=(tenant.pk, messages[0].pk), task_id="own-429", throw=False
    )
    assert [o["countdown"] for o in asked] == [45.0]
    assert retries == []  # its own retry, not a task of its own
    assert statuses(messages) == ["sending", "sent"]


def test_a_permanent_error_fails_only_its_reply_and_frees_its_slot(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    script.errors["reply 2"] = ConnectorError("Status is a duplicate.", permanent=True)

    assert run(messages[0]) == "sent"

    assert [(s, a, e) for s, _x, a, e in rows(messages)] == [
        ("sent", 1, ""),
        ("sent", 1, ""),
        ("failed", 1, "Status is a duplicate."),
    ]
    failed: Conversation = messages[2].conversation
    assert reload(failed).public_reply_count == 0
    assert reload(messages[0].conversation).public_reply_count == 1


def test_a_refusing_platform_pauses_and_degrades_the_account_until_a_call_works(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    script: Script,
    asked: list[dict[str, Any]],
    retries: list[tuple[tuple[int, int], Any]],
) -> None:
    from social import sending

    messages = due_replies(tenant, agent, [account], 2)
    script.errors["reply 0"] = ConnectorError("slow down", retry_after=20, status=429)
    script.errors["reply 1"] = ConnectorError("Bad Gateway", status=502)
    run(messages[0])

    assert statuses(messages) == ["sending", "sending"]
    with tenant_context(tenant):
        degraded = SocialAccount.objects.get(pk=account.pk)
    assert degraded.degraded_since is not None
    assert degraded.last_error == "The platform answered 429: slow down"
    assert 19 < sending.pauses([account.pk])[account.pk] <= 20
    [(args, _options)] = retries
    assert args == (tenant.pk, messages[1].pk)

    # Reply 1's retry comes before the pause ends: it waits without a call.
    expire_claims(messages[1:])
    run(messages[1])
    assert FakeConnector.sent == []
    assert 19 + tasks.HELD_MARGIN < asked[-1]["countdown"] <= 20 + tasks.HELD_MARGIN
    assert rows(messages[1:])[0][3] == (
        "The platform is refusing or failing calls; waiting before trying."
    )

    # The pause runs out; the next attempt works, which clears the degraded
    # state and wakes reply 0 (waiting out its Retry-After) at once.
    sending.resume([account.pk])
    expire_claims(messages[1:])
    retries.clear()
    assert run(messages[1]) == "sent"
    with tenant_context(tenant):
        healthy = SocialAccount.objects.get(pk=account.pk)
        [woken] = Message.objects.filter(pk=messages[0].pk)
    assert (healthy.degraded_since, healthy.last_error) == (None, "")
    assert [args for args, _options in retries] == [(tenant.pk, messages[0].pk)]
    assert woken.claimed_at is not None
    assert woken.claimed_at < timezone.now() - delivery.CLAIM_LEASE
    assert run(messages[0], task_id="woken") == "sent"
    assert sorted(r.text for r in FakeConnector.sent) == ["reply 0", "reply 1"]
    assert script.lookups == ["reply 1", "reply 0"]


def test_a_reply_held_by_its_accounts_pause_is_retried_when_the_pause_ends(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    script: Script,
    asked: list[dict[str, Any]],
    retries: list[tuple[tuple[int, int], Any]],
) -> None:
    """Held back without a call, a reply waits out the pause and no more: on its
    third attempt the backoff would be 6.4 to 9.6 s, the pause has half a second
    left."""
    from social import sending

    messages = due_replies(tenant, agent, [account], 2)
    with tenant_context(tenant):
        Message.objects.filter(pk=messages[1].pk).update(attempts=2)
    sending.pause(account.pk, ConnectorError("slow down", retry_after=0.5))
    tasks.deliver_message.apply(
        args=(tenant.pk, messages[0].pk), task_id="held", retries=2, throw=False
    )

    assert FakeConnector.sent == []
    assert statuses(messages) == ["sending", "sending"]
    [own] = asked
    [(args, other)] = retries
    assert args == (tenant.pk, messages[1].pk)
    assert other["retries"] == 3
    for countdown in (own["countdown"], other["countdown"]):
        assert tasks.HELD_MARGIN < countdown <= 0.5 + tasks.HELD_MARGIN
    with tenant_context(tenant):
        claimed_at = Message.objects.get(pk=messages[1].pk).claimed_at
    assert claimed_at is not None
    hand_over = claimed_at + delivery.CLAIM_LEASE - timezone.now()
    assert hand_over <= timedelta(seconds=0.5 + tasks.HELD_MARGIN)


class _Message:
    """A task message as the worker's strategy receives it."""

    def __init__(self, args: list[Any]) -> None:
        self.args = args
        self.channel = None  # not a Redis channel: no client kept

    def decode(self) -> list[Any]:
        return [self.args, {}, {"callbacks": None}]


def test_a_message_for_a_reply_this_worker_sent_is_acknowledged_on_arrival(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch sent the reply before its own task came: the worker acknowledges
    the message without a request, a trace or log lines; any other message takes
    Celery's own path."""
    from celery.worker import strategy

    handled: list[list[Any]] = []
    monkeypatch.setattr(
        strategy,
        "default",
        lambda task, app, consumer, **options: (
            lambda message, body, ack, reject, callbacks: handled.append(message.args)
        ),
    )
    monkeypatch.setattr(tasks, "_sent_here", {})
    consumer = SimpleNamespace(connection_errors=(ConnectionError,))
    on_message = tasks.deliver_message.start_strategy(
        tasks.deliver_message.app, consumer
    )
    acked: list[list[Any]] = []

    def arrive(args: list[Any]) -> None:
        def ack(logger: logging.Logger, errors: tuple[type[Exception], ...]) -> None:
            # Celery's ack promise: message.ack_log_error(logger, errors)
            assert (logger, errors) == (tasks.logger, (ConnectionError,))
            acked.append(args)

        on_message(_Message(args), None, ack, None, [])

    arrive([7, 11])  # nothing sent here yet
    tasks._remember_sent(7, [11, 12])
    arrive([7, 11])
    arrive([7, 12])
    arrive([7, 13])  # not sent here
    arrive([8, 11])  # another tenant's message 11
    arrive(["not", "ids"])

    assert acked == [[7, 11], [7, 12]]
    assert handled == [[7, 11], [7, 13], [8, 11], ["not", "ids"]]


def test_the_batch_log_line_counts_what_was_not_sent() -> None:
    def attempt(error: ConnectorError | None, **flags: bool) -> Any:
        return tasks._Attempt(plan=Any, error=error, **flags)  # type: ignore[arg-type]

    paused = ConnectorError("waiting", retry_after=1.25)
    assert tasks._not_sent([attempt(None)]) == "none"
    assert (
        tasks._not_sent(
            [
                attempt(None),
                attempt(paused, held=True),
                attempt(ConnectorError("waiting", retry_after=0.5), held=True),
                attempt(ConnectorError("slow down", retry_after=12, status=429)),
                attempt(ConnectorError("Bad Gateway", status=502)),
                attempt(ConnectorError("Bad Gateway", status=502)),
                attempt(ConnectorError("taken over", status=502), skipped=True),
            ]
        )
        == "2 held (1.2 s), 1 status 429 (12.0 s), 2 status 502"
    )


def test_the_worker_loop_comes_back_at_once_while_eta_tasks_are_overdue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kombu's loop fires 10 timer entries a turn and, with more overdue, waits a
    second before the next 10 (the cause of replies 5-12 s late at 100/s); the
    delivery worker's loop comes back at once instead, still 10 a turn."""
    from celery.worker import strategy
    from kombu.asynchronous import Hub

    def overdue(hub: Hub, count: int) -> list[int]:
        fired: list[int] = []
        for n in range(count):
            hub.timer.call_at(time.monotonic() - 1, fired.append, (n,))
        return fired

    plain = Hub()
    fired = overdue(plain, 15)
    assert (plain.fire_timers(), len(fired)) == (1, 10)  # a second's sleep

    monkeypatch.setattr(strategy, "default", lambda *args, **options: None)
    hub = Hub()
    consumer = SimpleNamespace(
        connection_errors=(), controller=SimpleNamespace(hub=hub)
    )
    tasks.deliver_message.start_strategy(tasks.deliver_message.app, consumer)
    tasks.deliver_message.start_strategy(tasks.deliver_message.app, consumer)
    fired = overdue(hub, 15)
    assert (hub.fire_timers(), len(fired)) == (0.0, 10)
    assert (hub.fire_timers(), len(fired)) == (1, 15)  # none left: kombu's own
    # Nothing overdue: kombu's own delay (the next entry's, capped).
    later: list[int] = []
    for loop in (plain, hub):
        loop.timer.call_at(time.monotonic() + 5, later.append, (1,))
    assert hub.fire_timers() == plain.fire_timers() > 1
    assert later == []


def test_a_batch_reads_its_replies_in_the_same_statements_whatever_its_size(
    tenant: Tenant, agent: User, account: SocialAccount, script: Script
) -> None:
    """The plans and the record load only the fields they use (.only): a field
    read that was left out would cost a statement per reply."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for accounts, size in (
        ([account], 2),
        ([make_account(tenant, handle=f"acmeair_{n}") for n in range(3)], 6),
    ):
        messages = due_replies(tenant, agent, accounts, size, text=f"batch {size}")
        with CaptureQueriesContext(connection) as statements:
            assert run(messages[0], task_id=f"batch-of-{size}") == "sent"
        assert statuses(messages) == ["sent"] * size
        counts.append(len(statements.captured_queries))

    assert counts[0] == counts[1]
