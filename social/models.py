"""Connected social accounts, listening rules, and the global tables of the social
layer: routes, webhook events and Earshot's per-instance Mastodon apps."""

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
    API = "api", "API channel"


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
        # An admin disconnected it: no credentials, no route; its conversations stay.
        DISCONNECTED = "disconnected", "Disconnected"

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
    # Encrypted at rest with the tenant bound in (social.crypto); never logged.
    credentials = models.TextField(blank=True, editable=False)
    base_url = models.URLField(
        blank=True, help_text="Per-instance platforms (Mastodon)."
    )
    # When the stored access token expires (None: it does not, or unknown); the
    # scheduled refresh (social.tokens) reads it without decrypting credentials.
    token_expires_at = models.DateTimeField(null=True, blank=True)
    poll_cursor = models.CharField(max_length=255, blank=True)
    # Where the listening keyword search stopped (its own position, apart from
    # poll_cursor: a different endpoint with its own ids or times).
    search_cursor = models.CharField(max_length=255, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_failures = models.PositiveSmallIntegerField(default=0)
    # Since when the platform has been refusing or failing this account's calls
    # (429, 5xx, no answer); None when its last call worked. Apart from `status`:
    # a degraded account stays connected, polled and sent through (with backoff);
    # social.health sets and clears it.
    degraded_since = models.DateTimeField(null=True, blank=True)
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

    @property
    def degraded(self) -> bool:
        return self.degraded_since is not None


def connector_ref(account: SocialAccount) -> "AccountRef":
    """What the account's connector needs to act for it (credentials decrypted)."""
    from social.connectors.base import AccountRef
    from social.crypto import decrypt_credentials

    credentials = decrypt_credentials(account.tenant_id, account.credentials)
    return AccountRef(
        platform=account.platform,
        external_id=account.external_id,
        handle=account.handle,
        credentials=credentials,
        base_url=account.base_url,
    )


def validate_query(value: str) -> None:
    """Form/model validation of a listening query: the error names its position."""
    from django.core.exceptions import ValidationError

    from social.listening import RuleError, parse_query

    try:
        parse_query(value)
    except RuleError as exc:
        raise ValidationError(str(exc)) from None


class ListeningRule(TenantModel):
    """A brand's listening query (R1): untagged public posts it matches become
    conversations (action inbox) or are only counted (feed)."""

    class Action(models.TextChoices):
        INBOX = "inbox", "Put in the inbox"
        FEED = "feed", "Feed only"

    brand = TenantForeignKey(
        Brand, on_delete=models.CASCADE, related_name="listening_rules"
    )
    name = models.CharField(max_length=80)
    query = models.TextField(
        validators=[validate_query],
        help_text='e.g. ("acme air" OR acmeair OR #acmeair) -job -hiring',
    )
    platforms = models.JSONField(default=list, blank=True, help_text="Empty: all.")
    variants = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"acme air": ["akme air", "acmeair"]}'
    )
    action = models.CharField(
        max_length=8, choices=Action.choices, default=Action.INBOX
    )
    enabled = models.BooleanField(default=True)
    # A competitor's rule: its matches go to the competitor feed (advocacy), never
    # the inbox; its action must be "feed" (social.listening_services).
    competitor = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["brand", "name"]
        constraints: ClassVar[list[Any]] = tenant_constraints(fks=["brand"])

    def __str__(self) -> str:
        return self.name


class ChannelRoute(models.Model):
    """Global routing: which tenant and account a platform account id belongs to.

    Webhooks arrive before any tenant is known; this table answers "whose is it?".
    Its uniqueness is genuinely global (one platform account, one workspace), so it
    is not a tenant table; only the connect flow (social.services) writes it.
    """

    platform = models.CharField(max_length=20, choices=Platform.choices)
    external_account_id = models.CharField(max_length=128)
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+"
    )
    account_id = models.BigIntegerField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["platform", "external_account_id"], name="social_route_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_account_id} → tenant {self.tenant_id}"


class MastodonApp(models.Model):
    """Earshot's OAuth app on one Mastodon instance (`POST /api/v1/apps`).

    Global: the app belongs to this deployment, not to a workspace, and every
    workspace connecting accounts on that instance uses it. The client secret is
    encrypted (social.crypto.encrypt_app_secret). Registered again when the
    deployment's callback address changes.
    """

    base_url = models.URLField(unique=True)
    redirect_uri = models.URLField()
    client_id = models.CharField(max_length=255)
    client_secret = models.TextField(editable=False)
    scopes = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return self.base_url


class WebhookEvent(models.Model):
    """One inbound webhook delivery, stored raw before it is acknowledged.

    Global because it is stored before routing; `tenant` is filled once routed.
    Kept for replay and inspection (malformed deliveries included).
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        UNROUTABLE = "unroutable", "Unroutable"
        MALFORMED = "malformed", "Malformed"
        FAILED = "failed", "Failed"

    platform = models.CharField(max_length=20, choices=Platform.choices)
    event_key = models.CharField(max_length=128)
    body = models.BinaryField()
    headers_digest = models.CharField(max_length=64)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.RECEIVED
    )
    error = models.TextField(blank=True)
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    items = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(default=now)
    # When a worker last started this event, or when its retry is due: the sweep
    # (social.sweep_webhook_events) queues `received` events untouched for a while,
    # whose task was lost (broker down at receipt, a killed worker).
    touched_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["platform", "event_key"], name="social_webhook_uniq"
            )
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["status", "received_at"], name="social_webhook_status_ix"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.event_key} ({self.status})"


class WaitingItem(TenantModel):
    """An inbound item whose fate depends on another item not yet recorded.

    An untagged public reply in a thread Earshot does not follow (yet), which no
    inbox listening rule matches: in-order delivery would have recorded it after its
    parent opened the thread, so it waits here, durably, instead of being dropped
    (DESIGN §5, invariant 2). It is recorded as soon as its thread is (see
    social.ingest.record_for_account), or decided on its own merits at
    `decide_after` (social.tasks.decide_waiting_items).
    """

    account = TenantForeignKey(
        SocialAccount, on_delete=models.CASCADE, related_name="+"
    )
    platform = models.CharField(max_length=20, choices=Platform.choices)
    external_id = models.CharField(max_length=255)
    thread_ref = models.CharField(max_length=255)
    item = models.JSONField()  # social.connectors.base.item_to_dict
    created_at = models.DateTimeField(default=now)
    decide_after = models.DateTimeField()

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["account"]),
            models.UniqueConstraint(
                fields=["tenant", "platform", "external_id"],
                name="social_waiting_item_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "account", "thread_ref"],
                name="social_waiting_thread_ix",
            ),
            models.Index(
                fields=["tenant", "decide_after"], name="social_waiting_due_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.external_id} waiting on {self.thread_ref}"


class PostEngagement(TenantModel):
    """A public post's engagement as its platform last reported it (R13).

    social.engagement reads it for the posts that open public conversations and
    keeps one row per post and account, with the counts by kind; the conversation
    keeps the total and its growth (helpdesk.services.spreading).
    """

    account = TenantForeignKey(
        SocialAccount, on_delete=models.CASCADE, related_name="+"
    )
    external_id = models.CharField(max_length=255)
    reposts = models.PositiveIntegerField(default=0)
    likes = models.PositiveIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)
    quotes = models.PositiveIntegerField(default=0)
    read_at = models.DateTimeField(default=now)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["account"]),
            models.UniqueConstraint(
                fields=["tenant", "account", "external_id"],
                name="social_post_engagement_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.total}"

    @property
    def total(self) -> int:
        return self.reposts + self.likes + self.replies + self.quotes
