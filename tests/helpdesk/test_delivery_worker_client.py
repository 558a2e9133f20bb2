"""The delivery worker's Redis channel (helpdesk.tasks.delivery_strategy): every
task message is recorded unacknowledged (acks_late) and acknowledged through the
channel's one kept client (tenants.tasks._keep_redis_client; kombu built a redis
client, with its table of reply callbacks, for each of the two), and the message
of a reply this process already recorded sent, acknowledged as it arrives, is not
recorded at all (helpdesk.tasks._record_unsent_only): two round trips fewer."""

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from helpdesk import tasks
from tests.helpdesk.live import count_redis_clients, empty_scratch_broker
from tests.redis_dbs import redis_url

QUEUE = Queue("h-kept-client", Exchange("h-kept-client"), "h-kept-client")


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    with empty_scratch_broker() as client:
        yield client


@pytest.fixture
def pipelines(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The unacknowledged set's pipelines executed (kombu's QoS), each as its
    commands' names (the queue's declarations and length reads left out)."""
    sent: list[list[str]] = []
    real: Any = redis.client.Pipeline.execute

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        names = [str(command[0][0]) for command in self.command_stack]
        if set(names) <= {"ZADD", "HSET", "ZREM", "HDEL"}:
            sent.append(names)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    return sent


def consume(
    messages: list[tuple[str, list[int]]],
    monkeypatch: pytest.MonkeyPatch,
    *,
    after_first: Any = None,
) -> list[tuple[str, list[int]]]:
    """Publish the (task name, args) messages and consume them, the delivery
    task's through its strategy (Celery's own part acknowledges after handling),
    any other task's acknowledged by a plain handler; returns what was handled."""
    from celery.worker import strategy

    handled: list[tuple[str, list[int]]] = []

    def handle(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any) -> None:
        handled.append((message.headers["task"], body[0]))
        message.ack()

    monkeypatch.setattr(strategy, "default", lambda *args, **options: handle)
    delivery = tasks.deliver_message.start_strategy(
        tasks.deliver_message.app, type("C", (), {"connection_errors": ()})()
    )

    def on_message(message: Any) -> None:
        body = message.decode()
        if message.headers["task"] == tasks.DELIVER_MESSAGE:
            delivery(message, body, message.ack_log_error, message.reject, [])
        else:
            handle(message, body, None, None, [])

    with Connection(redis_url("scratch")) as conn:
        producer = conn.Producer()
        for name, args in messages:
            producer.publish(
                [args, {}, {}],
                exchange=QUEUE.exchange,
                routing_key="h-kept-client",
                declare=[QUEUE],
                headers={"task": name},
            )
        with conn.Consumer(QUEUE, no_ack=False, on_message=on_message):
            conn.drain_events(timeout=5)
            if after_first is not None:
                after_first()
            for _ in messages[1:]:
                conn.drain_events(timeout=5)
    return handled


def test_task_messages_are_recorded_and_acknowledged_through_one_kept_client(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "_sent_here", {})
    made: list[Any] = []

    def count() -> None:  # the first message's append built a client
        made.extend(count_redis_clients(monkeypatch))

    handled = consume(
        [(tasks.DELIVER_MESSAGE, [7, n]) for n in range(4)],
        monkeypatch,
        after_first=count,
    )

    assert handled == [(tasks.DELIVER_MESSAGE, [7, n]) for n in range(4)]
    assert made == []
    assert (broker.hlen("unacked"), broker.zcard("unacked_index")) == (0, 0)


def test_a_message_of_a_reply_sent_here_is_not_recorded_unacknowledged(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch, pipelines: list[list[str]]
) -> None:
    """Another task's message with the same arguments is recorded as before: its
    work is still to do, and a worker lost mid-task must give it back."""
    monkeypatch.setattr(tasks, "_sent_here", {})
    tasks._remember_sent(7, [11, 12])

    handled = consume(
        [
            (tasks.DELIVER_MESSAGE, [7, 10]),  # not sent here: handled
            (tasks.DELIVER_MESSAGE, [7, 11]),
            ("helpdesk.deliver_webhook", [7, 11]),
            (tasks.DELIVER_MESSAGE, [7, 12]),
            (tasks.DELIVER_MESSAGE, [7, 13]),
        ],
        monkeypatch,
    )

    assert handled == [
        (tasks.DELIVER_MESSAGE, [7, 10]),
        ("helpdesk.deliver_webhook", [7, 11]),
        (tasks.DELIVER_MESSAGE, [7, 13]),
    ]
    recorded, removed = ["ZADD", "HSET"], ["ZREM", "HDEL"]
    # The first message's record comes before the channel is set up.
    assert pipelines == [recorded, removed] * 3
    assert (broker.hlen("unacked"), broker.zcard("unacked_index")) == (0, 0)
