"""Incidents (R13): many customers, one cause.

An incident groups conversations of a workspace ("AA31 cancelled, 5 Dec"). Its
timeline records what happened (links, notes, holding statements, updates sent,
closing). An update is one text with placeholders sent to every linked customer;
each customer is one `UpdateRecipient` row, claimed and completed in the same
transaction as its `post_reply`, so a re-run resumes and never sends twice.
Workflows live in incidents/services.py.
"""

import uuid
from typing import Any, ClassVar

from django.db import models
from django.utils.timezone import now

from helpdesk.models import Conversation, Message, Tag, agent_reference
from social.models import ListeningRule
from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.models import Brand


class Incident(TenantModel):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    title = models.CharField(max_length=160)
    brand = TenantForeignKey(
        Brand, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    holding_statement = models.TextField(blank=True)
    holding_statement_at = models.DateTimeField(null=True, blank=True)
    # The linking rule: new conversations that match are linked while it is open.
    rule_terms = models.CharField(
        max_length=300, blank=True, help_text="Comma-separated terms (any matches)."
    )
    rule_tag = TenantForeignKey(
        Tag, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rule_listening_rule = TenantForeignKey(
        ListeningRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_by = agent_reference()
    created_at = models.DateTimeField(default=now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        constraints: ClassVar[list[Any]] = tenant_constraints(
            fks=["brand", "rule_tag", "rule_listening_rule"]
        )
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "status", "-created_at"], name="incidents_status_ix"
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def has_rule(self) -> bool:
        return bool(
            self.rule_terms.strip() or self.rule_tag_id or self.rule_listening_rule_id
        )


class IncidentLink(TenantModel):
    class Via(models.TextChoices):
        HAND = "hand", "By hand"
        BULK = "bulk", "Selected in the inbox"
        RULE = "rule", "By the incident's rule"

    incident = TenantForeignKey(
        Incident, on_delete=models.CASCADE, related_name="links"
    )
    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="+"
    )
    via = models.CharField(max_length=8, choices=Via.choices, default=Via.HAND)
    linked_by = agent_reference()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["incident", "conversation"]),
            models.UniqueConstraint(
                fields=["tenant", "incident", "conversation"],
                name="incidents_link_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "conversation"], name="incidents_link_conv_ix"
            )
        ]

    def __str__(self) -> str:
        return f"{self.incident_id}:{self.conversation_id}"


class IncidentEntry(TenantModel):
    """One line of an incident's timeline; internal notes are entries too."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        LINKED = "linked", "Linked"
        UNLINKED = "unlinked", "Unlinked"
        NOTE = "note", "Note"
        HOLDING = "holding", "Holding statement"
        UPDATE = "update", "Update sent"
        CLOSED = "closed", "Closed"

    incident = TenantForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    text = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = agent_reference()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]
        constraints: ClassVar[list[Any]] = tenant_constraints(fks=["incident"])
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "incident", "created_at"],
                name="incidents_entry_ix",
            )
        ]
        verbose_name_plural = "incident entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.pk}"


class IncidentUpdate(TenantModel):
    """One personalised update to every linked customer (R13)."""

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        DONE = "done", "Done"

    incident = TenantForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    text = models.TextField(help_text="With placeholders, e.g. {first_name}.")
    idempotency_key = models.UUIDField(default=uuid.uuid4)
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.SENDING
    )
    created_by = agent_reference()
    created_at = models.DateTimeField(default=now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["incident"]),
            # A double click, or a retried request, finds the update it made.
            models.UniqueConstraint(
                fields=["tenant", "incident", "idempotency_key"],
                name="incidents_update_key_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"Update {self.pk} of incident {self.incident_id}"


class UpdateRecipient(TenantModel):
    """One customer of an update; claimed and completed with its post_reply."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    update = TenantForeignKey(
        IncidentUpdate, on_delete=models.CASCADE, related_name="recipients"
    )
    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="+"
    )
    # The account the reply goes out from: the sends are paced per account.
    account_id = models.BigIntegerField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.PENDING
    )
    reason = models.CharField(max_length=300, blank=True)
    # Failed because the brand's near-duplicate check flagged it (R6): a retry
    # confirms the warning, as the composer's "send anyway" does.
    flagged = models.BooleanField(default=False)
    confirm_duplicate = models.BooleanField(default=False)
    message = TenantForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    visibility = models.CharField(max_length=8, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["position", "id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["update", "conversation", "message"]),
            models.UniqueConstraint(
                fields=["tenant", "update", "conversation"],
                name="incidents_recipient_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "update", "status", "position"],
                name="incidents_recipient_ix",
            )
        ]

    def __str__(self) -> str:
        return f"{self.update_id}:{self.conversation_id} {self.status}"
