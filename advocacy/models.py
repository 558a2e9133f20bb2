"""Models of the advocacy app (issue 14): advocate suggestions with their evidence
(R14), and the competitor feed (competitor listening rules' matches, never the
inbox).

Workflows live in `advocacy/services.py` and `advocacy/competitors.py`.
"""

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from helpdesk.models import Contact, Conversation, Message
from social.models import ListeningRule, Platform
from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.models import Brand


class AdvocateSuggestion(TenantModel):
    """One contact's standing as an advocate: suggested (pending), confirmed or
    dismissed by a person. One row per contact; the counts are the evidence of
    the window (advocacy.rules) at the last scan."""

    class Status(models.TextChoices):
        PENDING = "pending", "Suggested"
        CONFIRMED = "confirmed", "Advocate"
        DISMISSED = "dismissed", "Dismissed"

    contact = TenantForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING
    )
    positive_count = models.PositiveIntegerField(default=0)
    defence_count = models.PositiveIntegerField(default=0)
    last_evidence_at = models.DateTimeField(null=True, blank=True)
    suggested_at = models.DateTimeField(default=now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    decision_note = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-last_evidence_at", "-id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["contact"]),
            models.UniqueConstraint(
                fields=["tenant", "contact"], name="advocacy_suggestion_contact_uniq"
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "status", "-last_evidence_at"],
                name="advocacy_suggestion_status_ix",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()}: contact {self.contact_id}"


class AdvocateEvidence(TenantModel):
    """One inbound message that speaks for an advocate: positive, or defending
    the brand in another customer's complaint thread (or in reply to a critic)."""

    class Kind(models.TextChoices):
        POSITIVE = "positive", "Positive message"
        DEFENCE = "defence", "Defended the brand"

    contact = TenantForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    message = TenantForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    sent_at = models.DateTimeField()
    found_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-sent_at", "-id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["contact", "message", "conversation"]),
            models.UniqueConstraint(
                fields=["tenant", "message", "kind"],
                name="advocacy_evidence_message_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "contact", "-sent_at"],
                name="advocacy_evidence_contact_ix",
            ),
            models.Index(
                fields=["tenant", "sent_at"], name="advocacy_evidence_sent_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} message {self.message_id}"


class AdvocacyScan(TenantModel):
    """How far the periodic scan read a workspace's inbound messages (by id)."""

    last_message_id = models.BigIntegerField(default=0)
    scanned_at = models.DateTimeField(default=now)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(),
            models.UniqueConstraint(
                fields=["tenant"], name="advocacy_scan_tenant_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"scan up to message {self.last_message_id}"


class CompetitorMention(TenantModel):
    """A public post matched by a competitor listening rule. It is kept here, in
    the competitor feed, and never opens a conversation."""

    class Sentiment(models.TextChoices):
        NEGATIVE = "negative", "Negative"
        NEUTRAL = "neutral", "Neutral"
        POSITIVE = "positive", "Positive"

    rule = TenantForeignKey(
        ListeningRule, on_delete=models.CASCADE, related_name="competitor_mentions"
    )
    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    platform = models.CharField(max_length=20, choices=Platform.choices)
    external_id = models.CharField(max_length=128)
    external_url = models.URLField(blank=True, max_length=500)
    author_handle = models.CharField(max_length=128, blank=True)
    author_name = models.CharField(max_length=200, blank=True)
    author_followers = models.PositiveIntegerField(default=0)
    text = models.TextField()
    language = models.CharField(max_length=16, blank=True)
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices)
    posted_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-posted_at", "-id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["rule", "brand"]),
            models.UniqueConstraint(
                fields=["tenant", "rule", "platform", "external_id"],
                name="advocacy_mention_item_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "rule", "posted_at"], name="advocacy_mention_rule_ix"
            ),
            models.Index(
                fields=["tenant", "posted_at"], name="advocacy_mention_posted_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id} ({self.rule_id})"
