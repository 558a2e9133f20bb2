"""Connected social accounts. Webhook events, routes and listening rules come with the
social platforms issue."""

from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models
from django.utils.timezone import now

from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.models import Brand

if TYPE_CHECKING:
    from social.connectors.base import AccountRef


class Platform(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    X = "x", "X"
    FACEBOOK = "facebook", "Facebook"
    INSTAGRAM = "instagram", "Instagram"
    REDDIT = "reddit", "Reddit"
    MASTODON = "mastodon", "Mastodon"
    BLUESKY = "bluesky", "Bluesky"
    REVIEWS = "reviews", "Review sites"


class SocialAccount(TenantModel):
    """One account of a brand on one platform."""

    class Purpose(models.TextChoices):
        CARE = "care", "Care"
        MARKETING = "marketing", "Marketing"

    class Status(models.TextChoices):
        CONNECTED = "connected", "Connected"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
        REVOKED = "revoked", "Revoked"
        DEGRADED = "degraded", "Degraded"

    brand = TenantForeignKey(Brand, on_delete=models.PROTECT, related_name="accounts")
    platform = models.CharField(max_length=20, choices=Platform.choices)
    external_id = models.CharField(max_length=128)
    handle = models.CharField(max_length=128)
    display_name = models.CharField(max_length=200, blank=True)
    purpose = models.CharField(
        max_length=12, choices=Purpose.choices, default=Purpose.CARE
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.CONNECTED
    )
    last_error = models.TextField(blank=True)
    # Encrypted at rest (tenant bound into the ciphertext) by the social issue.
    credentials = models.TextField(blank=True, editable=False)
    base_url = models.URLField(
        blank=True, help_text="Per-instance platforms (Mastodon)."
    )
    poll_cursor = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["platform", "handle"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", "platform", "external_id"],
                name="social_account_tenant_platform_ext_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} @{self.handle}"


def connector_ref(account: SocialAccount) -> "AccountRef":
    """What the account's connector needs to act for it (credentials included)."""
    import json

    from social.connectors.base import AccountRef

    credentials = json.loads(account.credentials) if account.credentials else {}
    return AccountRef(
        platform=account.platform,
        external_id=account.external_id,
        handle=account.handle,
        credentials=credentials,
        base_url=account.base_url,
    )
