"""Workspaces (tenants), their brands and people.

`User` and `Tenant` are global: login happens before a tenant is known, and the
tenant registry routes requests. Everything else is a `TenantModel`.
"""

import zoneinfo
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now

from tenants.base import TenantForeignKey, TenantModel, tenant_constraints

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Brand",
    "Invitation",
    "Membership",
    "Tenant",
    "TenantModel",
    "User",
]


class EmailUserManager(UserManager["User"]):
    """Users log in with their email address; there is no username."""

    def _create_user_object(
        self,
        username: str | None,
        email: str | None,
        password: str | None,
        **extra: Any,
    ) -> "User":
        email = self.normalize_email(email or username or "")
        user = self.model(email=email, **extra)
        user.set_password(password)
        return user

    def create_user(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> "User":
        user = self._create_user_object(None, email, password, **extra)
        user.save(using=self._db)
        return user

    def create_superuser(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> "User":
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractUser):
    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    display_name = models.CharField(
        max_length=80, blank=True, help_text="Shown to customers on public replies."
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[EmailUserManager] = EmailUserManager()

    def __str__(self) -> str:
        return self.email

    @property
    def public_name(self) -> str:
        return self.display_name or self.first_name or self.email.split("@")[0]


class Tenant(models.Model):
    """A workspace: one customer company. Global registry, no RLS."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        DELETED = "deleted", "Deleted"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.ACTIVE
    )
    status_reason = models.CharField(max_length=300, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    plan = models.CharField(max_length=30, default="standard")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


def default_business_hours() -> dict[str, list[list[str]]]:
    weekdays = [["09:00", "17:00"]]
    return {
        "mon": weekdays,
        "tue": weekdays,
        "wed": weekdays,
        "thu": weekdays,
        "fri": weekdays,
        "sat": [],
        "sun": [],
    }


def validate_timezone(value: str) -> None:
    from django.core.exceptions import ValidationError

    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone.")


SPREADING_THRESHOLD_DEFAULT = 60
SPREADING_THRESHOLD_MIN = 1
SPREADING_THRESHOLD_MAX = 1_000_000


class Brand(TenantModel):
    """A brand of the workspace; it owns social accounts and the care settings."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, db_index=False)
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone]
    )
    business_hours = models.JSONField(default=default_business_hours)
    public_reply_limit = models.PositiveSmallIntegerField(default=2)
    send_hold_seconds = models.PositiveSmallIntegerField(default=20)
    private_first_allowed = models.BooleanField(default=False)
    pause_while_pending = models.BooleanField(
        default=True,
        help_text="Waiting on the customer (pending) stops the SLA clock.",
    )
    queue_window_minutes = models.PositiveSmallIntegerField(
        default=5,
        help_text="How far reach or sentiment may move a conversation up the queue.",
    )
    # R13 (helpdesk.services.spreading): a public conversation whose engagement
    # grows faster than this (reposts, likes, replies, quotes per hour) spreads.
    spreading_threshold = models.PositiveIntegerField(
        default=SPREADING_THRESHOLD_DEFAULT,
        validators=[
            MinValueValidator(SPREADING_THRESHOLD_MIN),
            MaxValueValidator(SPREADING_THRESHOLD_MAX),
        ],
        help_text="Engagement per hour (reposts, likes, replies, quotes) from "
        "which a public conversation is flagged spreading.",
    )
    publish_badge = models.BooleanField(
        default=False,
        help_text="Show response rate and time on the public status page and badge.",
    )
    sla_digest = models.BooleanField(
        default=False,
        help_text="Email the brand's admins yesterday's figures each morning.",
    )
    signature_rules = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per platform, e.g. {"x": " ^{initials}"}; "default" for the rest.',
    )
    auto_assign = models.BooleanField(
        default=True, help_text="Assign new conversations round-robin to online agents."
    )
    # Spike alerts (R13, spikes.detector): a five-minute count opens an alert when
    # it reaches the seasonal median plus `spike_threshold` robust deviations, and
    # at least `spike_min_count` messages (the floor for quiet brands).
    spike_alerts = models.BooleanField(
        default=True, help_text="Alert when inbound volume spikes."
    )
    spike_threshold = models.PositiveSmallIntegerField(
        default=5, help_text="Robust deviations above the usual volume (2-20)."
    )
    spike_min_count = models.PositiveIntegerField(
        default=10, help_text="Never alert below this many messages in 5 minutes."
    )
    # R15 (helpdesk.deflection): phrases that send a customer elsewhere, per
    # language; a language left out uses the built-in defaults.
    deflection_phrases = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per language, e.g. {"en": ["call our hotline"]}; a language left '
        "out uses the defaults.",
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(),
            models.UniqueConstraint(
                fields=["tenant", "slug"], name="tenants_brand_tenant_slug_uniq"
            ),
            models.CheckConstraint(
                condition=models.Q(send_hold_seconds__lte=120),
                name="tenants_brand_hold_max_120",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SlaPolicy(TenantModel):
    """Response targets (minutes of business time) for one brand, or, with no
    brand, the workspace's fallback for brands without their own."""

    brand = TenantForeignKey(
        Brand,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sla_policies",
    )
    first_response_minutes = models.PositiveIntegerField(default=60)
    next_response_minutes = models.PositiveIntegerField(default=60)
    resolution_minutes = models.PositiveIntegerField(null=True, blank=True)
    urgent_first_response_minutes = models.PositiveIntegerField(default=10)
    urgent_next_response_minutes = models.PositiveIntegerField(default=10)
    urgent_on_negative = models.BooleanField(
        default=True,
        help_text="Negative sentiment puts a conversation in the urgent lane.",
    )
    urgent_tags = models.JSONField(
        default=list,
        blank=True,
        help_text="Tag names that put a conversation in the urgent lane.",
    )
    updated_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", "brand"], name="tenants_slapolicy_brand_uniq"
            ),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(brand__isnull=True),
                name="tenants_slapolicy_fallback_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(first_response_minutes__gt=0)
                & models.Q(next_response_minutes__gt=0)
                & models.Q(urgent_first_response_minutes__gt=0)
                & models.Q(urgent_next_response_minutes__gt=0)
                & (
                    models.Q(resolution_minutes__isnull=True)
                    | models.Q(resolution_minutes__gt=0)
                ),
                name="tenants_slapolicy_targets_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"SLA policy ({self.brand or 'workspace fallback'})"


class Holiday(TenantModel):
    """Days a brand is closed whatever its weekly hours say (both dates included,
    in the brand's time zone)."""

    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="holidays")
    name = models.CharField(max_length=120)
    start_date = models.DateField()
    end_date = models.DateField()

    class Meta:
        ordering: ClassVar[list[str]] = ["start_date"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.CheckConstraint(
                condition=models.Q(end_date__gte=models.F("start_date")),
                name="tenants_holiday_range_ordered",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "brand", "start_date"], name="tenants_holiday_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.start_date} to {self.end_date})"


class Membership(TenantModel):
    """A user's role in one workspace."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        AGENT = "agent", "Agent"
        VIEWER = "viewer", "Viewer"

    RANK: ClassVar[dict[str, int]] = {"viewer": 0, "agent": 1, "admin": 2, "owner": 3}

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    capacity = models.PositiveSmallIntegerField(
        default=20, help_text="Open conversations auto-assign gives this agent at most."
    )
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    # ISO 639-1 codes (helpdesk.language.LANGUAGES) this member answers in;
    # auto-assignment prefers them for a conversation in one of these languages.
    languages = models.JSONField(default=list, db_default=[], blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(own_rows_column="user_id"),
            models.UniqueConstraint(
                fields=["tenant", "user"], name="tenants_membership_tenant_user_uniq"
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["user"], name="tenants_membership_user_ix"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} as {self.role} in {self.tenant_id}"

    def has_role(self, role: "Membership.Role") -> bool:
        return self.RANK[self.role] >= self.RANK[role]


class Invitation(TenantModel):
    """An invitation to join the workspace with a role, accepted via a signed token."""

    email = models.EmailField()
    role = models.CharField(
        max_length=10, choices=Membership.Role.choices, default=Membership.Role.AGENT
    )
    invited_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = tenant_constraints()
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "email"], name="tenants_invitation_email_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > now()
        )


class AuditEvent(TenantModel):
    """A security-relevant action in a workspace: who did what to which object."""

    actor = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = tenant_constraints()
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "-created_at"], name="tenants_audit_recent_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"


class ApiToken(TenantModel):
    """A personal API token of one member, bound to this workspace.

    Only a SHA-256 digest of the token is stored; the token itself is shown once.
    Scopes are cumulative (read < write < admin) and capped by the member's role at
    the time of each request, so demoting a member demotes their tokens.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"
        ADMIN = "admin", "Read, write and administer"

    RANK: ClassVar[dict[str, int]] = {"read": 0, "write": 1, "admin": 2}

    membership = TenantForeignKey(
        Membership, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=80)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=16, help_text="Shown to tell tokens apart.")
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["membership"]),
            models.UniqueConstraint(
                fields=["tenant", "digest"], name="tenants_apitoken_digest_uniq"
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "membership"], name="tenants_apitoken_member_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: "ApiToken.Scope") -> bool:
        return self.RANK[self.scope] >= self.RANK[scope]
