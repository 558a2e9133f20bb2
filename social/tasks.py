"""Celery tasks of the social layer (thin; the logic is in social/ingest.py)."""

from celery import Task

from social import ingest
from tenants.tasks import system_task


@system_task(
    name="social.process_webhook_event",
    bind=True,
    max_retries=10,
    acks_late=True,
    reject_on_worker_lost=True,
)
def process_webhook_event(task: Task, event_id: int) -> str:  # type: ignore[type-arg]
    """Process one stored delivery; the tenant is learned from routing, per item.

    Errors are retried with backoff; processing is idempotent.
    """
    from social.models import WebhookEvent

    WebhookEvent.objects.filter(pk=event_id).update(attempts=task.request.retries + 1)
    try:
        return ingest.process_webhook_event(event_id)
    except Exception as exc:
        if task.request.retries >= (task.max_retries or 0):
            WebhookEvent.objects.filter(pk=event_id).update(
                status="failed", error=str(exc)[:2000]
            )
            raise
        raise task.retry(
            countdown=min(300, 2 ** (task.request.retries + 1)), exc=exc
        ) from exc
