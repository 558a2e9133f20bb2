"""Goodwill gestures (issue 14): per-brand pools of single-use codes (discounts,
vouchers) that an agent attaches to a private reply.

A code is *available* while it has no reply, or its reply was undone during the
hold (R5: a cancelled reply gives its code back to the pool). Once claimed by a
reply that was not undone, it is used and never handed out again; the row keeps
who used it, where, and the customer's reach (the follower band of the
conversation) for the reports.
"""

from typing import Any, ClassVar

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from helpdesk.models import Conversation, FollowerBand, Message, agent_reference
from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.models import Brand

CODE_MAX_LENGTH = 64


class GoodwillPool(TenantModel):
    """A brand's pool of codes of one kind ("10% off next flight")."""

    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    description = models.CharField(
        max_length=300, blank=True, help_text="Shown to the agent in the composer."
    )
    low_water_mark = models.PositiveIntegerField(
        default=10, help_text="Warn when fewer codes than this are left."
    )
    # Set when the pool goes below its mark (the admins are emailed then), cleared
    # when it is back at or above it: one email per crossing.
    low_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", "brand", "name"], name="goodwill_pool_name_uniq"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class GoodwillCode(TenantModel):
    """One single-use code of a pool; `message` is the reply it went out in."""

    pool = TenantForeignKey(GoodwillPool, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=CODE_MAX_LENGTH)
    imported_at = models.DateTimeField(default=now)
    message = TenantForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    claimed_by = agent_reference()
    claimed_at = models.DateTimeField(null=True, blank=True)
    follower_band = models.CharField(
        max_length=8, choices=FollowerBand.choices, blank=True
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["pool", "message", "conversation"]),
            models.UniqueConstraint(
                fields=["tenant", "pool", "code"], name="goodwill_code_pool_uniq"
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "pool", "id"],
                condition=Q(message__isnull=True),
                name="goodwill_code_free_ix",
            ),
            models.Index(
                fields=["tenant", "message"],
                condition=Q(message__isnull=False),
                name="goodwill_code_message_ix",
            ),
            models.Index(
                fields=["tenant", "claimed_at"],
                condition=Q(claimed_at__isnull=False),
                name="goodwill_code_claimed_ix",
            ),
        ]

    def __str__(self) -> str:
        return self.code
