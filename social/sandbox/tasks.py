"""The Sandbox's webhook sender: retried like a real platform's."""

from typing import Any

from celery import Task

from social.sandbox import network
from tenants.tasks import system_task


@system_task(name="sandbox.deliver_webhook", bind=True, max_retries=6)
def deliver_webhook(task: Task, url: str, secret: str, payload: dict[str, Any]) -> int:  # type: ignore[type-arg]
    """POST one signed delivery; retry on network errors and non-2xx answers."""
    try:
        status = network.post_webhook(url, secret, payload)
    except Exception as exc:  # any transport failure is retried
        raise task.retry(countdown=2 ** (task.request.retries + 1), exc=exc) from exc
    if status >= 300:
        raise task.retry(countdown=2 ** (task.request.retries + 1))
    return status
