"""The care core's rows: contacts, conversations, messages and what hangs off them.

Every model is a TenantModel; relations between them are composite (tenant_id, id)
keys. Workflows live in helpdesk/services/, not here.
"""

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from social.models import Platform, SocialAccount
from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.implied import implied_tenant_key
from tenants.models import Brand


def agent_reference() -> "models.ForeignKey[Any, Any]":
    """An optional link to the agent (a global user) behind a row; no reverse name."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )


class Contact(TenantModel):
    """A customer, known through one or more platform identities (R11)."""

    display_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    external_crm_id = models.CharField(max_length=128, blank=True)
    notes = models.TextField(blank=True)
    merged_into = TenantForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = tenant_constraints(fks=["merged_into"])

    def __str__(self) -> str:
        return self.display_name or f"Contact {self.pk}"


class Identity(TenantModel):
    """A contact's account on one platform."""

    tenant = implied_tenant_key()  # by (tenant_id, contact_id)
    contact = TenantForeignKey(
        Contact, on_delete=models.CASCADE, related_name="identities"
    )
    platform = models.CharField(max_length=20, choices=Platform.choices)
    external_id = models.CharField(max_length=128)
    handle = models.CharField(max_length=128, blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    followers = models.PositiveIntegerField(default=0)
    profile_url = models.URLField(blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["platform", "handle"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["contact"]),
            models.UniqueConstraint(
                fields=["tenant", "platform", "external_id"],
                name="helpdesk_identity_platform_ext_uniq",
            ),
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.platform}:@{self.handle or self.external_id}"


class SlaLane(models.TextChoices):
    NORMAL = "normal", "Normal"
    URGENT = "urgent", "Urgent"


class SlaKind(models.TextChoices):
    FIRST = "first", "First response"
    NEXT = "next", "Next response"


class FollowerBand(models.TextChoices):
    """The author's reach, in the bands the fairness report compares (R10)."""

    SMALL = "small", "Under 100"
    MEDIUM = "medium", "100 to 10k"
    LARGE = "large", "Over 10k"


class NoReplyReason(models.TextChoices):
    SPAM = "spam", "Spam"
    CHATTER = "chatter", "Chatter"
    THANKS = "thanks", "Thanks"
    DUPLICATE = "duplicate", "Duplicate"


class Conversation(TenantModel):
    class Origin(models.TextChoices):
        MENTION = "mention", "Mention"
        LISTENING = "listening", "Listening (untagged)"
        COMMENT = "comment", "Comment"
        DIRECT_MESSAGE = "direct_message", "Direct message"
        REVIEW = "review", "Review"
        API = "api", "API"

    class ChannelState(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        SNOOZED = "snoozed", "Snoozed"
        RESOLVED = "resolved", "Resolved"

    class Sentiment(models.TextChoices):
        NEGATIVE = "negative", "Negative"
        NEUTRAL = "neutral", "Neutral"
        POSITIVE = "positive", "Positive"

    tenant = implied_tenant_key()  # by (tenant_id, brand_id)
    brand = TenantForeignKey(
        Brand, on_delete=models.PROTECT, related_name="conversations"
    )
    social_account = TenantForeignKey(
        SocialAccount,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="conversations",
    )
    contact = TenantForeignKey(
        Contact, on_delete=models.PROTECT, related_name="conversations"
    )
    platform = models.CharField(max_length=20, choices=Platform.choices)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    public_thread_ref = models.CharField(max_length=128, blank=True)
    private_thread_ref = models.CharField(max_length=128, blank=True)
    channel_state = models.CharField(
        max_length=8, choices=ChannelState.choices, default=ChannelState.PUBLIC
    )
    awaiting_private = models.BooleanField(
        default=False, help_text="Moved to private; the customer's next DM lands here."
    )
    mentions_account = models.BooleanField(default=False)
    public_reply_count = models.PositiveIntegerField(default=0)
    customer_message_count = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN
    )
    snoozed_until = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(default=0)
    sentiment = models.CharField(
        max_length=10, choices=Sentiment.choices, default=Sentiment.NEUTRAL
    )
    assignee = agent_reference()
    last_answered_by = agent_reference()
    team = models.CharField(max_length=60, blank=True)
    tags: "models.ManyToManyField[Tag, ConversationTag]" = models.ManyToManyField(
        "Tag", through="ConversationTag", related_name="+"
    )
    preview = models.CharField(max_length=280, blank=True)
    # The language of the latest customer message that had a detectable one
    # (helpdesk.language; "" until then).
    language = models.CharField(max_length=8, blank=True, default="", db_default="")
    first_customer_message_at = models.DateTimeField(null=True, blank=True)
    last_customer_message_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    # The running response clock (helpdesk.services.sla): which target it counts
    # toward, when it started, the business seconds it used before its current
    # run (a pause ends a run), and when the current run began.
    sla_lane = models.CharField(
        max_length=8, choices=SlaLane.choices, default=SlaLane.NORMAL
    )
    sla_kind = models.CharField(max_length=8, choices=SlaKind.choices, blank=True)
    sla_started_at = models.DateTimeField(null=True, blank=True)
    sla_run_started_at = models.DateTimeField(null=True, blank=True)
    sla_used_seconds = models.PositiveIntegerField(default=0)
    sla_target_seconds = models.PositiveIntegerField(null=True, blank=True)
    sla_due_soon_at = models.DateTimeField(null=True, blank=True)
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    # When the breach sweep last told the inbox this clock was due soon; a clock
    # whose sla_due_soon_at is later than this has not been announced yet
    # (helpdesk.services.breaches: once per clock, even when sweeps overlap).
    sla_due_soon_announced_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    follower_band = models.CharField(
        max_length=8, choices=FollowerBand.choices, default=FollowerBand.SMALL
    )
    no_reply_reason = models.CharField(
        max_length=10, choices=NoReplyReason.choices, blank=True
    )
    no_reply_at = models.DateTimeField(null=True, blank=True)
    no_reply_by = agent_reference()
    queue_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="SLA due time less the bounded reach bonus (R10).",
    )
    # Spread (R13, helpdesk.services.spreading): the public thread's engagement as
    # last read (reposts, likes, replies, quotes), its growth per hour between the
    # last two reads, when the next read is due, and since when it spreads.
    engagement_total = models.PositiveIntegerField(default=0)
    engagement_per_hour = models.FloatField(default=0.0)
    engagement_read_at = models.DateTimeField(null=True, blank=True)
    engagement_next_at = models.DateTimeField(null=True, blank=True)
    spreading_since = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(default=now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["queue_at", "-last_activity_at"]
        constraints: ClassVar[list[Any]] = tenant_constraints(
            fks=["brand", "social_account", "contact"],
            indexed_by={"social_account": "helpdesk_conv_thread_ix"},  # 0017
        )
        indexes: ClassVar[list[models.Index]] = [
            # Public conversations whose engagement read is due (social.engagement):
            # read once, by next read; never read, by age (the read's window).
            # Each row is in one of the two (migration 0024).
            models.Index(
                fields=["tenant", "engagement_next_at", "id"],
                condition=Q(engagement_next_at__isnull=False),
                name="helpdesk_conv_engagement_ix",
            ),
            models.Index(
                fields=["tenant", "created_at", "id"],
                condition=Q(engagement_next_at__isnull=True)
                & Q(social_account__isnull=False),
                name="helpdesk_conv_unread_ix",
            ),
            # At-risk and breached conversations (queue order, breach sweeps).
            models.Index(
                fields=["tenant", "status", "sla_due_at", "id"],
                condition=Q(sla_due_at__isnull=False),
                name="helpdesk_conv_due_ix",
            ),
            # The same after the brand: the inbox filtered by brand (migration
            # 0021; the brand key's own index serves its checks).
            models.Index(
                fields=["tenant", "brand", "status", "sla_due_at", "id"],
                condition=Q(sla_due_at__isnull=False),
                name="helpdesk_conv_brand_due_ix",
            ),
            # The same for the inbox's "All" tab (no status filter): the queue
            # order's bounds and candidates are due-time ranges (helpdesk.queue).
            models.Index(
                fields=["tenant", "sla_due_at", "id"],
                condition=Q(sla_due_at__isnull=False),
                name="helpdesk_conv_all_due_ix",
            ),
            # Running clocks not marked breached, by due time: the breach sweep
            # reads its due ones without the breached ones still waiting for an
            # answer (migration 0024).
            models.Index(
                fields=["tenant", "sla_due_at", "id"],
                condition=Q(sla_due_at__isnull=False) & Q(sla_breached_at__isnull=True),
                name="helpdesk_conv_unbreached_ix",
            ),
            # Breached clocks of a brand, oldest due first (the daily digest).
            models.Index(
                fields=["tenant", "brand", "sla_due_at", "id"],
                condition=Q(sla_breached_at__isnull=False),
                name="helpdesk_conv_breached_ix",
            ),
            # ...and its answered rows (no clock), most recent first.
            models.Index(
                fields=["tenant", "-last_activity_at", "id"],
                condition=Q(sla_due_at__isnull=True),
                name="helpdesk_conv_all_recent_ix",
            ),
            # A status tab's answered rows, most recent first (helpdesk.queue);
            # the status prefix of lookups by status.
            models.Index(
                fields=["tenant", "status", "-last_activity_at", "id"],
                name="helpdesk_conv_recent_ix",
            ),
            # An agent's conversations (assignee filter, open load per agent). Both
            # this and the thread index cover only rows their lookups name, so a
            # lookup by key cannot walk the tenant's rows through them on tables
            # never analyzed (helpdesk migration 0017).
            # Ends with the due index's order: the inbox filtered by assignee
            # reads its candidates as a range (helpdesk migration 0021).
            models.Index(
                fields=["tenant", "assignee", "status", "sla_due_at", "id"],
                condition=Q(assignee__isnull=False),
                name="helpdesk_conv_assignee_ix",
            ),
            # Snoozed conversations by wake-up time (the snoozed sweep; only they
            # hold one: every other transition clears it). Migration 0023.
            models.Index(
                fields=["tenant", "snoozed_until", "id"],
                condition=Q(snoozed_until__isnull=False),
                name="helpdesk_conv_snoozed_ix",
            ),
            # A user's no-reply marks: deleting a user sets them to NULL (and
            # PostgreSQL checks the key) by user alone; rare, so the index is tiny.
            models.Index(
                fields=["no_reply_by"],
                condition=Q(no_reply_by__isnull=False),
                name="helpdesk_conv_no_reply_by_ix",
            ),
            # A thread's conversation (inbound lookups) and an account's
            # conversations (its foreign key's checks: no index of its own).
            models.Index(
                fields=["tenant", "social_account", "contact", "public_thread_ref"],
                condition=Q(social_account__isnull=False),
                name="helpdesk_conv_thread_ix",
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.pk} ({self.platform}, {self.status})"

    @property
    def started_public(self) -> bool:
        return self.origin != self.Origin.DIRECT_MESSAGE


class Message(TenantModel):
    class Direction(models.TextChoices):
        IN = "in", "Inbound"
        OUT = "out", "Outbound"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"

    class DeliveryStatus(models.TextChoices):
        RECEIVED = "received", "Received"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer message"
        REPLY = "reply", "Agent reply"
        PRIVATE_INVITE = "private_invite", "Move to private"
        AUTO_REPLY = "auto_reply", "Automatic reply"

    tenant = implied_tenant_key()  # by (tenant_id, conversation_id)
    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    account = TenantForeignKey(
        SocialAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    platform = models.CharField(max_length=20, choices=Platform.choices)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    visibility = models.CharField(max_length=8, choices=Visibility.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CUSTOMER)
    # NULL until an outbound reply is sent, so the unique key only covers real ids.
    external_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    external_url = models.URLField(blank=True)
    in_reply_to_external_id = models.CharField(max_length=128, blank=True)
    author_identity = TenantForeignKey(
        Identity, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    author_agent = agent_reference()
    text = models.TextField()
    # Inbound only (helpdesk.sentiment.read_message): the detected language ("" when
    # unknown), the sentiment score in [-1, 1] and the anger signal.
    language = models.CharField(max_length=8, blank=True, default="", db_default="")
    sentiment_score = models.FloatField(null=True, blank=True)
    angry = models.BooleanField(default=False, db_default=False)
    delivery_status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.RECEIVED
    )
    counts_toward_limit = models.BooleanField(default=False)
    send_after = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    client_ref = models.UUIDField(default=uuid.uuid4, editable=False)
    claim_token = models.CharField(
        max_length=64,
        blank=True,
        help_text="The delivery attempt that holds the claim.",
    )
    seq = models.BigIntegerField(
        default=0, help_text="The tenant event sequence at creation."
    )
    created_at = models.DateTimeField(default=now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]
        constraints: ClassVar[list[Any]] = [
            # The thread index serves the conversation key (migration 0020).
            *tenant_constraints(
                fks=["conversation", "account", "author_identity"],
                indexed_by={"conversation": "helpdesk_msg_thread_ix"},
            ),
            models.UniqueConstraint(
                fields=["tenant", "platform", "external_id"],
                condition=Q(external_id__isnull=False),
                name="helpdesk_message_platform_ext_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "conversation", "created_at"],
                name="helpdesk_msg_thread_ix",
            ),
            models.Index(
                fields=["tenant", "delivery_status", "send_after"],
                condition=Q(direction="out"),
                name="helpdesk_msg_outbox_ix",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.visibility} message {self.pk}"


class Note(TenantModel):
    """An internal note on a conversation; never sent to the customer."""

    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        db_index=False,
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at"]
        constraints: ClassVar[list[Any]] = tenant_constraints(fks=["conversation"])

    def __str__(self) -> str:
        return f"Note {self.pk}"


class SavedReply(TenantModel):
    """A reusable reply with placeholders ({first_name}, {agent_name}, {brand_name})."""

    brand = TenantForeignKey(
        Brand, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    title = models.CharField(max_length=120)
    body = models.TextField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["title"]
        constraints: ClassVar[list[Any]] = tenant_constraints(fks=["brand"])
        verbose_name_plural = "saved replies"

    def __str__(self) -> str:
        return self.title


class Tag(TenantModel):
    name = models.CharField(max_length=60)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(),
            models.UniqueConstraint(
                fields=["tenant", "name"], name="helpdesk_tag_name_uniq"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ConversationTag(TenantModel):
    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="+"
    )
    tag = TenantForeignKey(Tag, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["conversation", "tag"]),
            models.UniqueConstraint(
                fields=["tenant", "conversation", "tag"], name="helpdesk_convtag_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}:{self.tag_id}"


class Event(TenantModel):
    """A live event as pushed to browsers, kept so reconnecting clients catch up."""

    seq = models.BigIntegerField()
    type = models.CharField(max_length=40)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["seq"]
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(),
            models.UniqueConstraint(
                fields=["tenant", "seq"], name="helpdesk_event_seq_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.seq} {self.type}"


class EventCounter(TenantModel):
    """The tenant's last event sequence number; its row lock orders events by commit."""

    value = models.BigIntegerField(default=0)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(),
            models.UniqueConstraint(
                fields=["tenant"], name="helpdesk_eventcounter_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.value}"
