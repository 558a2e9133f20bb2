"""Every Celery task goes to one of the three queues that `make serve` gives workers
of their own (Procfile): `inbound`, `delivery` and `default`. A task without a route
would land in the default queue by accident; inbound and reply delivery must never
share a queue, so a flood of webhooks cannot delay replies that are due."""

from typing import Any

from django.conf import settings

from helpdesk.celery import app

QUEUES = {"inbound", "delivery", "default"}
INBOUND = {
    "social.process_webhook_event",
    "helpdesk.record_inbound_item",
    "social.poll_account",
    "social.decide_waiting_items",
}
DELIVERY = {"helpdesk.deliver_message", "helpdesk.sweep_outbox"}


def _our_tasks() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


def _queue(name: str) -> str:
    """The queue Celery's router picks for task `name` (as apply_async would)."""
    router: Any = app.amqp.router
    route = router.route({}, name, (), {}, app.tasks[name])
    return str(route["queue"].name)


def test_every_task_is_routed_to_a_known_queue() -> None:
    tasks = _our_tasks()
    unrouted = sorted(tasks - set(settings.CELERY_TASK_ROUTES))
    assert unrouted == []
    assert {name: _queue(name) for name in tasks if _queue(name) not in QUEUES} == {}


def test_routes_name_only_registered_tasks() -> None:
    assert sorted(set(settings.CELERY_TASK_ROUTES) - _our_tasks()) == []


def test_inbound_and_delivery_land_on_different_queues() -> None:
    assert {_queue(name) for name in INBOUND} == {"inbound"}
    assert {_queue(name) for name in DELIVERY} == {"delivery"}


def test_queues_are_declared_durable() -> None:
    declared = {queue.name: queue.durable for queue in settings.CELERY_TASK_QUEUES}
    assert declared == {"inbound": True, "delivery": True, "default": True}
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"
