"""The post-commit enqueue without apply_async's per-call work (tenants.tasks._publish):
it puts on the broker what apply_async puts there, and leaves to apply_async every
call it does not cover."""

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery.signals import before_task_publish

from helpdesk import tasks
from helpdesk.celery import app as celery_app
from tenants import tasks as tenant_tasks
from tests.helpdesk.live import (
    count_redis_clients,
    empty_scratch_broker,
    real_broker,
)

ETA = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


@pytest.fixture(autouse=True)
def delivery_queue() -> None:
    """The real apply_async here (the package's autouse fixture captures it)."""


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """A real Redis broker (this process's scratch database), empty."""
    with empty_scratch_broker() as client:
        yield client


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """What Celery's before_task_publish signal saw, without the ids of each call."""
    seen: list[dict[str, Any]] = []

    def record(**message: Any) -> None:
        headers = dict(message["headers"])
        for varying in ("id", "root_id"):
            headers.pop(varying)
        properties = dict(message["properties"])
        properties.pop("correlation_id")
        seen.append(
            {
                "body": message["body"],
                "exchange": message["exchange"],
                "routing_key": message["routing_key"],
                "headers": headers,
                "properties": properties,
                "retry_policy": message["retry_policy"],
                "declare": [queue.name for queue in message["declare"]],
            }
        )

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


def stored(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The messages in Redis list `queue`, oldest first, without per-call ids."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        for varying in ("id", "root_id"):
            message["headers"].pop(varying)
        for varying in ("correlation_id", "delivery_tag"):
            message["properties"].pop(varying)
        messages.append(message)
    return messages


def test_a_reply_delivery_goes_out_as_apply_async_sends_it(
    broker: redis.Redis, published: list[dict[str, Any]]
) -> None:
    task = tasks.deliver_message

    task.apply_async((7, 11), eta=ETA)
    assert tenant_tasks._publish(task, (7, 11), {"eta": ETA}) is True

    assert len(published) == 2
    assert published[1] == published[0]
    assert published[0]["headers"]["eta"] == ETA.isoformat()
    assert published[0]["headers"]["task"] == "helpdesk.deliver_message"
    assert published[0]["body"][0] == (7, 11)
    assert published[0]["declare"] == ["delivery"]
    in_queue = stored(broker, "delivery")
    assert len(in_queue) == 2
    assert in_queue[1] == in_queue[0]


def test_a_countdown_and_another_queue_go_out_as_apply_async_sends_them(
    broker: redis.Redis, published: list[dict[str, Any]]
) -> None:
    task = tasks.deliver_webhook

    task.apply_async((3, 5), countdown=30)
    assert tenant_tasks._publish(task, (3, 5), {"countdown": 30}) is True

    assert len(published) == 2
    first_eta = datetime.fromisoformat(published[0]["headers"].pop("eta"))
    second_eta = datetime.fromisoformat(published[1]["headers"].pop("eta"))
    assert timedelta(0) <= second_eta - first_eta < timedelta(seconds=5)
    assert published[1] == published[0]
    assert published[0]["routing_key"] == "default"
    assert len(stored(broker, "default")) == 2


def test_enqueue_publishes_through_the_fast_path(broker: redis.Redis) -> None:
    calls: list[tuple[Any, ...]] = []
    real = tenant_tasks._publish

    def spy(task: Any, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
        done = real(task, args, options)
        calls.append((task.name, args, done))
        return done

    tenant_tasks._publish = spy
    try:
        sent = tenant_tasks.enqueue(
            tasks.deliver_message, 7, 11, eta=ETA, swept_by="helpdesk.sweep_outbox"
        )
    finally:
        tenant_tasks._publish = real

    assert sent is True
    assert calls == [("helpdesk.deliver_message", (7, 11), True)]
    assert len(stored(broker, "delivery")) == 1


def test_a_redis_channel_publishes_through_one_kept_client(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tenant_tasks.enqueue(
        tasks.deliver_message, 7, 0, swept_by="helpdesk.sweep_outbox"
    )
    made = count_redis_clients(monkeypatch)
    later = [
        tenant_tasks.enqueue(
            tasks.deliver_message, 7, n, swept_by="helpdesk.sweep_outbox"
        )
        for n in (1, 2, 3)
    ]

    assert [first, *later] == [True] * 4
    # kombu's channel built a redis client for each of them before.
    assert made == []
    bodies = [
        json.loads(base64.b64decode(message["body"]))[0]
        for message in stored(broker, "delivery")
    ]
    assert bodies == [[7, 0], [7, 1], [7, 2], [7, 3]]


@pytest.mark.parametrize(
    "options", [{"priority": 3}, {"queue": "default"}, {"eta": ETA, "expires": 60}]
)
def test_other_options_are_left_to_apply_async(
    broker: redis.Redis, options: dict[str, Any]
) -> None:
    assert tenant_tasks._publish(tasks.deliver_message, (7, 11), options) is False
    assert broker.llen("delivery") == 0


def test_eager_mode_and_a_replaced_apply_async_are_left_to_apply_async(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = tasks.deliver_message
    monkeypatch.setattr(task, "apply_async", lambda *args, **kwargs: None)
    assert tenant_tasks._publish(task, (7, 11), {"eta": ETA}) is False
    monkeypatch.undo()

    celery_app.conf.task_always_eager = True
    try:
        assert tenant_tasks._publish(task, (7, 11), {"eta": ETA}) is False
    finally:
        celery_app.conf.task_always_eager = False
    assert broker.llen("delivery") == 0


def test_a_call_from_inside_a_task_is_left_to_apply_async(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        type(celery_app), "current_worker_task", property(lambda app: object())
    )

    assert tenant_tasks._publish(tasks.deliver_message, (7, 11), {}) is False
    assert broker.llen("delivery") == 0


def test_wrong_arguments_raise_as_with_apply_async(broker: redis.Redis) -> None:
    with pytest.raises(TypeError):
        tasks.deliver_message.apply_async(())
    with pytest.raises(TypeError):
        tenant_tasks._publish(tasks.deliver_message, (), {})
    assert broker.llen("delivery") == 0


def test_a_broker_outage_is_logged_as_with_apply_async(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = "redis://127.0.0.1:1/0"
    warnings: dict[str, list[str]] = {}
    real = tenant_tasks._publish
    for path, publish in (("fast", real), ("apply_async", lambda *args: False)):
        caplog.clear()
        tenant_tasks._publish = publish
        try:
            with (
                real_broker(down),
                caplog.at_level(logging.WARNING, logger="tenants.tasks"),
            ):
                sent = tenant_tasks.enqueue(
                    tasks.deliver_message, 7, 11, swept_by="helpdesk.sweep_outbox"
                )
        finally:
            tenant_tasks._publish = real
        assert sent is False
        warnings[path] = [
            record.getMessage()
            for record in caplog.records
            if record.name == "tenants.tasks"
        ]

    assert warnings["fast"] == warnings["apply_async"]
    assert len(warnings["fast"]) == 1
    assert warnings["fast"][0].startswith(
        "broker unavailable, helpdesk.deliver_message(7, 11) not enqueued "
        "(helpdesk.sweep_outbox will pick it up): OperationalError("
    )
