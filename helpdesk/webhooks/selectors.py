"""Read-only queries over webhook endpoints and their delivery log."""

from django.db.models import QuerySet

from helpdesk.webhooks.models import WebhookDelivery, WebhookEndpoint
from tenants.models import Membership


def webhook_endpoints(membership: Membership) -> QuerySet[WebhookEndpoint]:
    """The member's workspace's endpoints, oldest first, with their creators."""
    return WebhookEndpoint.objects.select_related("created_by").order_by(
        "created_at", "id"
    )


def endpoint_deliveries(
    endpoint: WebhookEndpoint, *, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries, newest first (the delivery log).

    Get the endpoint through access_webhook_endpoint. `status` narrows the log to
    one WebhookDelivery.Status. Ordered by (created_at, id) descending, so it pages
    with a cursor on those two fields.
    """
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    if status is not None:
        deliveries = deliveries.filter(status=status)
    return deliveries.order_by("-created_at", "-id")
