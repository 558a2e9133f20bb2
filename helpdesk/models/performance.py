"""What care performance is measured from (R9, R10): facts and their rollups.

A `CareFact` is written once, in the transaction of the change it records (a
conversation opened, answered, answered again, resolved, marked "no reply needed",
or breached its target). Each carries the dimensions reports filter and group by,
as they were at that moment, so a report never re-reads messages.

`ReportRollup` (counters) and `ReportBucket` (histogram cells) are per hour and
per combination of those dimensions; helpdesk.services.rollups keeps them in step
with the facts and can rebuild them. The hour is the hour the customer's demand
started (the clock's start), so "answered within 1 h" and the response rate
describe the demand that arrived in a period.

Their counters are `CounterField`s: never negative, enforced by the database.
"""

from typing import Any, ClassVar

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.timezone import now

from helpdesk.models.core import (
    Conversation,
    FollowerBand,
    SlaLane,
    agent_reference,
)
from social.models import Platform, SocialAccount
from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.implied import implied_tenant_key
from tenants.models import Brand

# The PostgreSQL domain of the counters (migration 0019).
COUNTER_DOMAIN = "helpdesk_counter"


class CounterField(models.PositiveIntegerField):  # type: ignore[type-arg]
    """A count of the report tables: an integer that is never negative.

    Elsewhere it is a PositiveIntegerField: an integer column with its own
    `CHECK (column >= 0)`. On PostgreSQL the column is of the domain
    `helpdesk_counter` (integer, `CHECK (VALUE >= 0)`) instead, and PostgreSQL
    refuses a negative value just the same: in an INSERT, in an UPDATE and in
    the `DO UPDATE` of an upsert. What changes is the cost of a write: every
    statement that writes a table builds each of the table's CHECK constraints
    afresh (18 on each rollup table), while a domain's check is prepared once
    per server process. Migration 0019 has the figures.
    """

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "postgresql":
            return COUNTER_DOMAIN
        return super().db_type(connection)

    def db_check(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "postgresql":
            return None  # the domain's
        return super().db_check(connection)


class CareFact(TenantModel):
    class Kind(models.TextChoices):
        OPENED = "opened", "Conversation opened"
        FIRST_RESPONSE = "first_response", "First response"
        NEXT_RESPONSE = "next_response", "Next response"
        RESOLUTION = "resolution", "Resolution"
        NO_REPLY = "no_reply", "No reply needed"
        BREACH = "breach", "Target breached"

    tenant = implied_tenant_key()  # by (tenant_id, conversation_id)
    conversation = TenantForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Dimensions, as they were when the fact happened.
    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    account = TenantForeignKey(
        SocialAccount,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    platform = models.CharField(max_length=20, choices=Platform.choices)
    origin = models.CharField(max_length=16, choices=Conversation.Origin.choices)
    sentiment = models.CharField(max_length=10, choices=Conversation.Sentiment.choices)
    follower_band = models.CharField(max_length=8, choices=FollowerBand.choices)
    lane = models.CharField(max_length=8, choices=SlaLane.choices)
    agent = agent_reference()
    # The response's channel: public, or private (a DM, or the move to private).
    visibility = models.CharField(max_length=8, blank=True)
    # Only for no_reply facts: the reason given.
    reason = models.CharField(max_length=16, blank=True)
    # started_at: when the demand began (the customer's message; for a resolution,
    # the conversation's first customer message). at: when the fact happened.
    started_at = models.DateTimeField()
    at = models.DateTimeField(default=now)
    raw_seconds = models.PositiveIntegerField(null=True, blank=True)
    business_seconds = models.PositiveIntegerField(null=True, blank=True)
    target_seconds = models.PositiveIntegerField(null=True, blank=True)
    breached = models.BooleanField(default=False)
    # The demand began outside the brand's business hours.
    off_hours = models.BooleanField(default=False)

    class Meta:
        # The fact and brand indexes serve their keys' lookups (migration 0020).
        constraints: ClassVar[list[Any]] = tenant_constraints(
            fks=["conversation", "brand", "account"],
            indexed_by={
                "conversation": "helpdesk_fact_conv_ix",
                "brand": "helpdesk_fact_brand_ix",
            },
        )
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "brand", "started_at"], name="helpdesk_fact_brand_ix"
            ),
            models.Index(
                fields=["tenant", "conversation", "kind"],
                name="helpdesk_fact_conv_ix",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of conversation {self.conversation_id}"


# The dimensions of one rollup row (and of its histogram cells). Account and agent
# are plain ids, 0 for none, so the unique key needs no NULL handling.
ROLLUP_DIMENSIONS = (
    "hour",
    "brand_id",
    "account_id",
    "platform",
    "origin",
    "sentiment",
    "agent_id",
    "follower_band",
)
# The counters of a rollup row.
ROLLUP_COUNTERS = (
    "inbound",
    "opened",
    "off_hours_opened",
    "no_reply",
    "answered",
    "answered_public",
    "answered_private",
    "answered_1h",
    "answered_24h",
    "off_hours_answered_first_hour",
    "first_breached",
    "next_responses",
    "next_breached",
    "resolved",
    "resolution_breached",
    "breaches",
    "public_replies",
    "private_moves",
)


class _RollupDimensions(TenantModel):
    tenant = implied_tenant_key()  # by (tenant_id, brand_id)
    hour = models.DateTimeField()
    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    account_id = models.BigIntegerField(default=0)
    platform = models.CharField(max_length=20)
    origin = models.CharField(max_length=16)
    sentiment = models.CharField(max_length=10)
    agent_id = models.BigIntegerField(default=0)
    follower_band = models.CharField(max_length=8)

    class Meta:
        abstract = True


class _RollupCounters(models.Model):
    """The counters (ROLLUP_COUNTERS) of the hourly and the daily rollup rows."""

    inbound = CounterField(default=0)
    opened = CounterField(default=0)
    off_hours_opened = CounterField(default=0)
    no_reply = CounterField(default=0)
    answered = CounterField(default=0)
    answered_public = CounterField(default=0)
    answered_private = CounterField(default=0)
    answered_1h = CounterField(default=0)
    answered_24h = CounterField(default=0)
    off_hours_answered_first_hour = CounterField(default=0)
    first_breached = CounterField(default=0)
    next_responses = CounterField(default=0)
    next_breached = CounterField(default=0)
    resolved = CounterField(default=0)
    resolution_breached = CounterField(default=0)
    breaches = CounterField(default=0)
    public_replies = CounterField(default=0)
    private_moves = CounterField(default=0)

    class Meta:
        abstract = True


class ReportRollup(_RollupDimensions, _RollupCounters):
    """Counters for one hour and one combination of dimensions."""

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", *ROLLUP_DIMENSIONS],
                name="helpdesk_rollup_cell_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["tenant", "brand", "hour"], name="helpdesk_rollup_ix"),
        ]

    def __str__(self) -> str:
        return f"Rollup {self.hour:%Y-%m-%d %H}:00 brand {self.brand_id}"


class ReportBucket(_RollupDimensions):
    """One cell of a mergeable histogram: how many durations of `metric` fell in
    bucket `key` (a DDSketch logarithmic bucket, helpdesk.histograms) for one hour
    and one combination of dimensions. Merging is a SUM, so reports add cells in
    SQL over any range and filter."""

    class Metric(models.TextChoices):
        FIRST_RAW = "first_raw", "First response (calendar)"
        FIRST_BUSINESS = "first_business", "First response (business hours)"
        NEXT_RAW = "next_raw", "Next response (calendar)"
        NEXT_BUSINESS = "next_business", "Next response (business hours)"
        RESOLUTION_RAW = "resolution_raw", "Resolution (calendar)"
        RESOLUTION_BUSINESS = "resolution_business", "Resolution (business hours)"

    metric = models.CharField(max_length=20, choices=Metric.choices)
    key = models.IntegerField()
    count = CounterField(default=0)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", *ROLLUP_DIMENSIONS, "metric", "key"],
                name="helpdesk_bucket_cell_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "brand", "metric", "hour"],
                name="helpdesk_bucket_ix",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric}[{self.key}] = {self.count}"


# The dimensions of one daily rollup row: fewer than the hourly ones (no agent,
# no follower band), so a day of a brand's demand folds into a few dozen rows.
DAILY_DIMENSIONS = (
    "day",
    "brand_id",
    "account_id",
    "platform",
    "origin",
    "sentiment",
)
# The spans (in days) of the coarse histogram blocks (at most three blocks of
# each span at either end of a range, so few cells to read): a block of span s starts on
# a day whose number since 1970-01-01 is a multiple of s, so any range of whole
# days is a few blocks of each span.
BLOCK_SPANS = (1, 4, 16, 64)


class ReportDailyRollup(TenantModel, _RollupCounters):
    """The hourly rollup rows of one UTC day, summed over agents and follower
    bands: what reports read for whole days when no agent is chosen."""

    tenant = implied_tenant_key()  # by (tenant_id, brand_id)
    day = models.DateField()
    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    account_id = models.BigIntegerField(default=0)
    platform = models.CharField(max_length=20)
    origin = models.CharField(max_length=16)
    sentiment = models.CharField(max_length=10)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", "brand", *DAILY_DIMENSIONS[2:], "day"],
                name="helpdesk_daily_cell_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["tenant", "brand", "day"], name="helpdesk_daily_ix"),
        ]

    def __str__(self) -> str:
        return f"Rollup {self.day:%Y-%m-%d} brand {self.brand_id}"


# The counters kept per agent and follower band (ReportDailyAgentRollup).
AGENT_COUNTERS = ("answered", "public_replies", "private_moves", "no_reply")


class ReportDailyAgentRollup(TenantModel):
    """What agents did on one UTC day, per brand, account, platform, agent (0
    for none) and follower band: the agents table and the fairness panel read
    these for whole days."""

    tenant = implied_tenant_key()  # by (tenant_id, brand_id)
    day = models.DateField()
    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    account_id = models.BigIntegerField(default=0)
    platform = models.CharField(max_length=20)
    agent_id = models.BigIntegerField(default=0)
    follower_band = models.CharField(max_length=8)
    answered = CounterField(default=0)
    public_replies = CounterField(default=0)
    private_moves = CounterField(default=0)
    no_reply = CounterField(default=0)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=[
                    "tenant",
                    "brand",
                    "account_id",
                    "platform",
                    "agent_id",
                    "follower_band",
                    "day",
                ],
                name="helpdesk_daily_agent_uniq",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["tenant", "brand", "day"], name="helpdesk_daily_agent_ix"
            ),
        ]

    def __str__(self) -> str:
        return f"Agent {self.agent_id} on {self.day:%Y-%m-%d} brand {self.brand_id}"


class ReportHourlyInbound(TenantModel):
    """Inbound customer messages per UTC hour, brand, account and platform: the
    hour-of-week heatmap reads these."""

    tenant = implied_tenant_key()  # by (tenant_id, brand_id)
    hour = models.DateTimeField()
    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    account_id = models.BigIntegerField(default=0)
    platform = models.CharField(max_length=20)
    inbound = CounterField(default=0)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=["tenant", "brand", "hour", "account_id", "platform"],
                name="helpdesk_hourly_inbound_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.inbound} inbound {self.hour:%Y-%m-%d %H}:00"


class ReportBlockBucket(TenantModel):
    """A histogram cell of one brand over a block of `span` UTC days starting on
    `day` (BLOCK_SPANS): the hourly cells of those days summed over every other
    dimension. Reports merge a period's blocks when no agent, account or
    platform is chosen."""

    tenant = implied_tenant_key()  # by (tenant_id, brand_id)
    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=20, choices=ReportBucket.Metric.choices)
    # The grouping: (0, "") counts every duration; first responses are also
    # counted per agent (agent_id, "") for agents other than 0, and per follower
    # band (0, band), for the agents table and the fairness panel.
    agent_id = models.BigIntegerField(default=0)
    follower_band = models.CharField(max_length=8, blank=True)
    span = models.PositiveSmallIntegerField()
    day = models.DateField()
    key = models.IntegerField()
    count = CounterField(default=0)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            *tenant_constraints(fks=["brand"]),
            models.UniqueConstraint(
                fields=[
                    "tenant",
                    "brand",
                    "metric",
                    "agent_id",
                    "follower_band",
                    "span",
                    "day",
                    "key",
                ],
                name="helpdesk_block_cell_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric}[{self.key}] x{self.span} {self.day} = {self.count}"


class SimulationRun(TenantModel):
    """The outcome of one `manage.py simulate_day` run for a brand: its
    parameters and, per queue policy, the figures it printed (the reports page
    charts the latest)."""

    brand = TenantForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    parameters = models.JSONField(default=dict)
    results = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = tenant_constraints(fks=["brand"])

    def __str__(self) -> str:
        return f"Simulated day for brand {self.brand_id} ({self.created_at:%Y-%m-%d})"
