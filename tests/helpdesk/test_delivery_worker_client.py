"""The delivery worker records each task message unacknowledged (acks_late) and
acknowledges it through its Redis channel's one kept client
(helpdesk.tasks.delivery_strategy, tenants.tasks._keep_redis_client): kombu built a
redis client, with its table of reply callbacks, for each of the two (about 0.1 ms
of the worker's CPU per message)."""

from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from helpdesk import tasks
from tests.helpdesk.live import count_redis_clients, empty_scratch_broker
from tests.redis_dbs import redis_url


def test_task_messages_are_recorded_and_acknowledged_through_one_kept_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.worker import strategy

    handled: list[int] = []

    def handle(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any) -> None:
        handled.append(body["n"])
        message.ack()

    monkeypatch.setattr(strategy, "default", lambda *args, **options: handle)
    monkeypatch.setattr(tasks, "_sent_here", {})
    on_message = tasks.deliver_message.start_strategy(
        tasks.deliver_message.app, type("C", (), {"connection_errors": ()})()
    )
    queue = Queue("h-kept-client", Exchange("h-kept-client"), "h-kept-client")
    with empty_scratch_broker() as broker, Connection(redis_url("scratch")) as conn:
        producer = conn.Producer()
        for n in range(4):
            producer.publish(
                {"n": n},
                exchange=queue.exchange,
                routing_key="h-kept-client",
                declare=[queue],
            )
        made: list[Any] = []
        with conn.Consumer(
            queue,
            no_ack=False,
            on_message=lambda message: on_message(
                message, message.decode(), message.ack, message.reject, []
            ),
        ):
            conn.drain_events(timeout=5)  # the first: its append builds a client
            made = count_redis_clients(monkeypatch)
            for _ in range(3):
                conn.drain_events(timeout=5)

        assert handled == [0, 1, 2, 3]
        assert made == []
        assert broker.hlen("unacked") == 0
        assert broker.zcard("unacked_index") == 0
