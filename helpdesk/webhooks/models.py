"""Outbound webhook rows: a workspace's endpoints and the deliveries queued for them.

`WebhookDelivery` is an outbox: a row is written in the same transaction as the
change it reports, and delivery is enqueued on commit (a beat sweep re-enqueues what
a lost broker message left behind). Workflows live in helpdesk/services/webhooks.py,
webhook_outbox.py and webhook_delivery.py.
"""

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from tenants.base import TenantForeignKey, TenantModel, tenant_constraints

LAST_ERROR_MAX = 300
RESPONSE_EXCERPT_MAX = 1000


class WebhookEndpoint(TenantModel):
    """A URL of the workspace's integration that receives signed events."""

    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(
        default=list, blank=True, help_text="Event types sent here; empty means all."
    )
    # Receivers need the plain secret for the HMAC, so it is encrypted, not hashed
    # (helpdesk/webhooks/crypto.py binds the tenant into the ciphertext).
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]
        constraints: ClassVar[list[Any]] = tenant_constraints()
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "is_active"], name="helpdesk_whendpoint_active_ix"
            ),
        ]

    def __str__(self) -> str:
        return self.description or self.url

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribes to `event_type` (no list means all)."""
        return not self.events or event_type in self.events


class WebhookDelivery(TenantModel):
    """One event for one endpoint, with its attempts so far (the delivery log)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FAILED = "failed", "Failed, will retry"
        SUCCEEDED = "succeeded", "Succeeded"
        GAVE_UP = "gave_up", "Gave up"

    endpoint = TenantForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    # Sent as the Earshot-Delivery header; the same on every retry.
    uuid = models.UUIDField(default=uuid.uuid4, editable=False)
    # The body's "id": one event sent to several endpoints has one event id.
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=40)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=LAST_ERROR_MAX, blank=True)
    response_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["endpoint"]),
            models.UniqueConstraint(
                fields=["tenant", "uuid"], name="helpdesk_whdelivery_uuid_uniq"
            ),
            models.UniqueConstraint(
                fields=["tenant", "endpoint", "event_id"],
                name="helpdesk_whdelivery_event_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "endpoint", "-created_at"],
                name="helpdesk_whdelivery_log_ix",
            ),
            models.Index(
                fields=["tenant", "next_attempt_at"],
                condition=Q(status__in=["pending", "failed"]),
                name="helpdesk_whdelivery_due_ix",
            ),
        ]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} → endpoint {self.endpoint_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.GAVE_UP}
