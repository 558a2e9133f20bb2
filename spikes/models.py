"""Models of the spikes app (R13, issue 14): inbound counts per brand and five
minutes, the rollup's cursor, and the spike alerts they raise."""

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.models import Brand

BUCKET_SECONDS = 300


class SpikeCount(TenantModel):
    """Inbound customer messages of one brand in one five-minute UTC bucket, by
    the conversation's sentiment and the listening rule that found it (0: none,
    the post was addressed to the brand). spikes.services.rollup writes these."""

    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    bucket = models.DateTimeField(help_text="Start of the five-minute bucket (UTC).")
    sentiment = models.CharField(max_length=10)
    rule_id = models.BigIntegerField(default=0)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", "brand", "bucket", "sentiment", "rule_id"],
                name="spikes_count_cell_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.count} inbound at {self.bucket:%Y-%m-%d %H:%M}"


class SpikeCursor(TenantModel):
    """How far the tenant's inbound messages are counted (the highest message id
    counted), so each periodic run counts only what is new."""

    last_message_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(),
            models.UniqueConstraint(fields=["tenant"], name="spikes_cursor_uniq"),
        ]

    def __str__(self) -> str:
        return f"counted to message {self.last_message_id}"


class SpikeAlert(TenantModel):
    """One spike of one brand: opened when a five-minute count crosses the
    brand's seasonal threshold, closed when volume is back near the baseline.
    At most one open alert per brand (the partial unique constraint)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    window_start = models.DateTimeField(help_text="The bucket that crossed (UTC).")
    count = models.PositiveIntegerField(help_text="Inbound in that bucket.")
    peak_count = models.PositiveIntegerField(default=0)
    baseline = models.FloatField(help_text="Median of the seasonal samples.")
    threshold = models.FloatField()
    by_sentiment = models.JSONField(default=dict, blank=True)
    by_rule = models.JSONField(default=dict, blank=True)
    top_terms = models.JSONField(default=list, blank=True)
    sample_message_ids = models.JSONField(default=list, blank=True)
    opened_at = models.DateTimeField(default=now)
    last_seen_at = models.DateTimeField(default=now)
    closed_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["-opened_at", "-id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", "brand"],
                condition=Q(status="open"),
                name="spikes_alert_one_open_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "-opened_at", "id"], name="spikes_alert_recent_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"Spike of {self.count} at {self.window_start:%Y-%m-%d %H:%M}"
