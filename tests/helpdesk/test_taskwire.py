"""Task messages written straight onto a Redis broker's queue (tenants.taskwire):
the envelope kombu stores, a real worker reading it as it reads kombu's, and
every call the wire does not cover, or cannot send, going through kombu."""

import base64
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.signals import before_task_publish

from helpdesk import publish, tasks
from helpdesk.celery import app as celery_app
from tenants import tasks as tenant_tasks
from tenants import taskwire
from tests.helpdesk.live import (
    BROKER_URL,
    ROOT,
    empty_scratch_broker,
    real_broker,
    worker_subprocess,
)

ETA = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
SWEEP = "helpdesk.sweep_outbox"


@pytest.fixture(autouse=True)
def delivery_queue() -> None:
    """The real apply_async here (the package's autouse fixture captures it)."""


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """A real Redis broker (this process's scratch database), empty."""
    with empty_scratch_broker() as client:
        yield client


def queued(client: redis.Redis, queue: str = "delivery") -> list[dict[str, Any]]:
    """The envelopes in Redis list `queue`, oldest first, their bodies decoded."""
    envelopes = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
        envelopes.append(envelope)
    return envelopes


def without_ids(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope without what differs per message: its task id (the id, the
    root id and the correlation id, all the same one) and kombu's delivery tag;
    checks that they are what kombu and Celery make."""
    headers, properties = dict(envelope["headers"]), dict(envelope["properties"])
    task_id = headers.pop("id")
    assert headers.pop("root_id") == task_id
    assert properties.pop("correlation_id") == task_id
    assert uuid.UUID(task_id).version == 4
    assert uuid.UUID(properties.pop("delivery_tag")).version == 4
    return {**envelope, "headers": headers, "properties": properties}


def learned() -> None:
    """One message through kombu, so the wire knows this pool's broker; emptied."""
    assert publish.enqueue_task("helpdesk.deliver_message", 7, 0, swept_by=SWEEP)
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    client.delete("delivery")


def test_the_wire_queues_the_envelope_kombu_queues(broker: redis.Redis) -> None:
    task = tasks.deliver_message
    learned()

    assert tenant_tasks.enqueue(task, 7, 11, eta=ETA, swept_by=SWEEP) is True
    assert taskwire.publish(task, (7, 11), {"eta": ETA}) is True
    assert tenant_tasks.enqueue(task, 7, 12, swept_by=SWEEP) is True
    assert taskwire.publish(task, (7, 12), {}) is True
    assert taskwire.publish(task, (0, -(2**63) + 1), {}) is True

    kombu_eta, wire_eta, kombu_now, wire_now, wire_extremes = queued(broker)
    assert without_ids(wire_eta) == without_ids(kombu_eta)
    assert without_ids(wire_now) == without_ids(kombu_now)
    assert kombu_eta["headers"]["eta"] == "2030-01-02T03:04:05.600000+00:00"
    assert kombu_now["headers"]["eta"] is None
    assert kombu_eta["body"][0] == [7, 11]
    assert kombu_eta["headers"]["argsrepr"] == "(7, 11)"
    assert kombu_eta["properties"]["delivery_info"] == {
        "exchange": "",
        "routing_key": "delivery",
    }
    assert kombu_eta["properties"]["priority"] == 0
    assert wire_extremes["body"][0] == [0, -(2**63) + 1]
    assert wire_extremes["headers"]["argsrepr"] == repr((0, -(2**63) + 1))
    task_ids = {envelope["headers"]["id"] for envelope in queued(broker)}
    assert len(task_ids) == 5


def test_a_webhook_delivery_goes_to_its_own_queue(broker: redis.Redis) -> None:
    task = tasks.deliver_webhook
    assert publish.enqueue_task("helpdesk.deliver_webhook", 3, 4, swept_by=None)
    broker.delete("default")

    assert tenant_tasks.enqueue(task, 3, 5, swept_by=None) is True
    assert taskwire.publish(task, (3, 5), {}) is True

    kombu, wire = queued(broker, "default")
    assert without_ids(wire) == without_ids(kombu)
    assert wire["headers"]["task"] == "helpdesk.deliver_webhook"
    assert wire["properties"]["delivery_info"]["routing_key"] == "default"
    assert broker.llen("delivery") == 0


def test_enqueue_task_learns_from_kombu_then_takes_the_wire(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    through_kombu: list[tuple[Any, ...]] = []
    real = tenant_tasks.enqueue

    def spy(task: Any, *args: Any, **options: Any) -> bool:
        through_kombu.append(args)
        return real(task, *args, **options)

    monkeypatch.setattr(publish, "enqueue", spy)
    sent = [
        publish.enqueue_task("helpdesk.deliver_message", 7, n, eta=ETA, swept_by=SWEEP)
        for n in (1, 2, 3)
    ]

    assert sent == [True] * 3
    assert through_kombu == [(7, 1)]  # the pool's first: kombu declares the queue
    assert [envelope["body"][0] for envelope in queued(broker)] == [
        [7, 1],
        [7, 2],
        [7, 3],
    ]


WORKER_SCRIPT = """
import json, sys
from celery.signals import task_received

def record(request, **_):
    seen = {
        "name": request.name,
        "id": request.id,
        "root_id": request.root_id,
        "parent_id": request.parent_id,
        "correlation_id": request.correlation_id,
        "args": list(request.args),
        "kwargs": request.kwargs,
        "eta": request.eta,
        "expires": request.expires,
        "delivery_info": request.delivery_info,
        "reply_to": request.reply_to,
        "argsrepr": request.argsrepr,
        "kwargsrepr": request.kwargsrepr,
        "ignore_result": request.ignore_result,
        "retries": request.request_dict.get("retries"),
        "timelimit": list(request.time_limits),
        "content_type": request.content_type,
    }
    with open(%(out)r, "a") as out:
        out.write(json.dumps(seen, default=str) + "\\n")

task_received.connect(record, weak=False)
from helpdesk.celery import app
app.worker_main(sys.argv[1:])
"""


def test_a_worker_receives_the_wire_message_as_it_receives_kombu_s(
    tmp_path: Path,
) -> None:
    out = tmp_path / "received.jsonl"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": BROKER_URL,
        "EARSHOT_TEST_EAGER": "0",
        "PYTHONPATH": str(ROOT),
    }
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    task = tasks.deliver_message
    try:
        with real_broker(BROKER_URL):
            learned()
            with worker_subprocess(
                env,
                tmp_path / "worker.log",
                name="taskwire",
                script=WORKER_SCRIPT % {"out": str(out)},
            ):
                # Held until 2030: received, never run.
                assert tenant_tasks.enqueue(task, 7, 1, eta=ETA, swept_by=SWEEP)
                assert taskwire.publish(task, (7, 2), {"eta": ETA}) is True
                deadline = 30.0
                step = 0.1
                while deadline > 0 and (
                    not out.exists() or len(out.read_text().splitlines()) < 2
                ):
                    threading.Event().wait(step)
                    deadline -= step
    finally:
        client.flushdb()

    kombu, wire = sorted(
        (json.loads(line) for line in out.read_text().splitlines()),
        key=lambda seen: seen["args"],
    )
    for seen in (kombu, wire):
        assert seen.pop("root_id") == seen["id"]
        assert seen.pop("correlation_id") == seen.pop("id")
    assert wire["args"] == [7, 2]
    assert wire["argsrepr"] == "(7, 2)"
    wire.update(args=[7, 1], argsrepr="(7, 1)")
    assert wire == kombu
    assert kombu["name"] == "helpdesk.deliver_message"
    assert kombu["eta"] == str(ETA)  # the worker's datetime
    assert kombu["delivery_info"]["routing_key"] == "delivery"
    assert kombu["delivery_info"]["priority"] == 0


@pytest.mark.parametrize(
    ("args", "options"),
    [
        ((7, 11), {"countdown": 30}),
        ((7, 11), {"priority": 3}),
        ((7, 11), {"queue": "default"}),
        ((7, 11), {"eta": ETA, "expires": 60}),
        ((7, 11), {"eta": ETA.isoformat()}),
        ((7, "11"), {}),
        ((7, True), {}),
        ((7, 2**63), {}),
    ],
)
def test_other_calls_are_left_to_kombu(
    broker: redis.Redis, args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    learned()

    assert taskwire.publish(tasks.deliver_message, args, options) is False
    assert broker.llen("delivery") == 0


def test_eager_mode_a_worker_s_task_and_a_replaced_apply_async_are_left_to_kombu(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = tasks.deliver_message
    learned()
    with monkeypatch.context() as patched:
        patched.setattr(task, "apply_async", lambda *args, **kwargs: None)
        assert taskwire.publish(task, (7, 11), {}) is False
    celery_app.conf.task_always_eager = True
    try:
        assert taskwire.publish(task, (7, 11), {}) is False
    finally:
        celery_app.conf.task_always_eager = False
    with monkeypatch.context() as patched:
        patched.setattr(
            type(celery_app), "current_worker_task", property(lambda app: object())
        )
        assert taskwire.publish(task, (7, 11), {}) is False

    assert taskwire.publish(task, (7, 11), {}) is True
    assert broker.llen("delivery") == 1


def test_a_replaced_apply_async_teaches_the_wire_nothing(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        tasks.deliver_message,
        "apply_async",
        lambda args, **options: captured.append(tuple(args)),
    )

    assert publish.enqueue_task("helpdesk.deliver_message", 7, 1, swept_by=SWEEP)

    assert captured == [(7, 1)]
    assert _key() not in taskwire._targets
    assert broker.llen("delivery") == 0


def test_publish_signal_receivers_see_every_message(broker: redis.Redis) -> None:
    seen: list[Any] = []

    def record(body: Any, **_: Any) -> None:
        seen.append(body[0])

    learned()
    before_task_publish.connect(record, weak=False)
    try:
        assert taskwire.publish(tasks.deliver_message, (7, 11), {}) is False
        assert publish.enqueue_task("helpdesk.deliver_message", 7, 12, swept_by=SWEEP)
    finally:
        before_task_publish.disconnect(record)

    assert seen == [(7, 12)]
    assert [envelope["body"][0] for envelope in queued(broker)] == [[7, 12]]


def test_a_pool_kombu_has_not_published_through_is_left_to_kombu(
    broker: redis.Redis,
) -> None:
    assert taskwire.publish(tasks.deliver_message, (7, 11), {}) is False
    assert broker.llen("delivery") == 0


def test_another_transport_is_left_to_kombu(broker: redis.Redis) -> None:
    with real_broker("memory://"):
        assert publish.enqueue_task("helpdesk.deliver_message", 7, 1, swept_by=SWEEP)
        assert taskwire.publish(tasks.deliver_message, (7, 2), {}) is False
        assert taskwire._targets[_key()].wire is None
    assert broker.llen("delivery") == 0


@pytest.mark.parametrize(
    "change",
    [
        {"password": "secret"},
        {"username": "someone", "password": "secret"},
        {"connection_class": redis.SSLConnection},
        {"connection_class": redis.UnixDomainSocketConnection, "path": "/tmp/r"},
    ],
    ids=["password", "user", "tls", "unix"],
)
def test_credentials_tls_and_unix_sockets_are_left_to_kombu(
    broker: redis.Redis, change: dict[str, Any]
) -> None:
    with celery_app.producer_or_acquire() as producer:
        params = producer.channel._connparams()
    assert taskwire._wire_of(params) is not None
    assert taskwire._wire_of({**params, **change}) is None


def test_a_key_prefix_is_left_to_kombu(broker: redis.Redis) -> None:
    saved = celery_app.conf.broker_transport_options
    prefixed = {**saved, "global_keyprefix": "x:"}
    celery_app.conf.broker_transport_options = prefixed
    try:
        with real_broker(celery_app.conf.broker_url):
            assert publish.enqueue_task(
                "helpdesk.deliver_message", 7, 1, swept_by=SWEEP
            )
            assert taskwire.publish(tasks.deliver_message, (7, 2), {}) is False
            assert taskwire._targets[_key()].wire is None
    finally:
        celery_app.conf.broker_transport_options = saved
    assert broker.llen("x:delivery") == 1
    assert broker.llen("delivery") == 0


def _key() -> tuple[int, int]:
    return (id(celery_app.amqp.producer_pool), os.getpid())


def _target() -> Any:
    target = taskwire._targets[_key()]
    assert target.wire is not None
    return target


def test_a_socket_the_server_closed_is_replaced(broker: redis.Redis) -> None:
    learned()
    assert taskwire.publish(tasks.deliver_message, (7, 1), {}) is True
    wire = _target().wire
    port = wire.local.socket.getsockname()[1]
    assert broker.client_kill(f"127.0.0.1:{port}") is True

    assert taskwire.publish(tasks.deliver_message, (7, 2), {}) is True
    assert [envelope["body"][0] for envelope in queued(broker)] == [[7, 1], [7, 2]]


def test_each_thread_has_its_own_socket(broker: redis.Redis) -> None:
    learned()
    sockets: list[Any] = []

    def send(n: int) -> None:
        assert taskwire.publish(tasks.deliver_message, (7, n), {}) is True
        sockets.append(_target().wire.local.socket)

    threads = [threading.Thread(target=send, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(one) for one in sockets}) == 2
    assert sorted(envelope["body"][0] for envelope in queued(broker)) == [
        [7, 1],
        [7, 2],
    ]


def test_a_wire_that_fails_gives_the_message_to_kombu(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    learned()
    wire = _target().wire
    assert taskwire.publish(tasks.deliver_message, (7, 1), {}) is True
    wire._close()
    monkeypatch.setattr(wire, "address", ("127.0.0.1", 1))  # refused
    assert publish.enqueue_task("helpdesk.deliver_message", 7, 2, swept_by=SWEEP)
    monkeypatch.undo()
    assert taskwire.publish(tasks.deliver_message, (7, 3), {}) is True
    wire._close()
    monkeypatch.setattr(wire, "db", 10_000)  # SELECT answers an error
    assert publish.enqueue_task("helpdesk.deliver_message", 7, 4, swept_by=SWEEP)

    assert wire.local.socket is None
    assert [envelope["body"][0] for envelope in queued(broker)] == [
        [7, 1],
        [7, 2],
        [7, 3],
        [7, 4],
    ]


def test_wrong_arguments_raise_as_with_apply_async(broker: redis.Redis) -> None:
    learned()
    with pytest.raises(TypeError):
        taskwire.publish(tasks.deliver_message, (), {})
    assert broker.llen("delivery") == 0


def test_a_broker_outage_is_logged_as_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        real_broker("redis://127.0.0.1:1/0"),
        caplog.at_level(logging.WARNING, logger="tenants.tasks"),
    ):
        sent = publish.enqueue_task("helpdesk.deliver_message", 7, 11, swept_by=SWEEP)

    assert sent is False
    warnings = [r.getMessage() for r in caplog.records if r.name == "tenants.tasks"]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "broker unavailable, helpdesk.deliver_message(7, 11) not enqueued "
        "(helpdesk.sweep_outbox will pick it up): OperationalError("
    )
