"""Competitor listening: matches of a brand's competitor rules go to the
competitor feed (`CompetitorMention`), never into the inbox.

`social.ingest.record_for_account` (the one inbound decision, shared by webhooks,
batches and polls) hands every listening decision's matches to
`record_competitor_mentions`; the matcher gives competitor rules the action
"competitor" (social.listening_rules), which is never "inbox", so no conversation
is opened for them. Only posts that reach the listening decision are read: posts
that tag the brand, private messages and replies in followed threads go to the
inbox as before, even when they name a competitor.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Literal

from django.db.models import Count, QuerySet
from django.db.models.functions import Trunc
from django.utils import timezone

from advocacy.models import CompetitorMention
from helpdesk.sentiment import score_sentiment
from social.connectors.base import InboundItem
from social.listening import RuleMatch
from social.models import ListeningRule, SocialAccount
from tenants.models import Membership

Bucket = Literal["day", "hour"]
SENTIMENTS = ("negative", "neutral", "positive")


def record_competitor_mentions(
    account: SocialAccount, item: InboundItem, matches: Sequence[RuleMatch]
) -> int:
    """Keep `item` in the competitor feed once per matching competitor rule;
    returns how many rules matched. Idempotent (a replayed or re-decided item is
    stored once per rule: INSERT ... ON CONFLICT DO NOTHING, no savepoint). Call
    inside the account's tenant context, in the transaction that records the item;
    writes nothing else and emits nothing."""
    rules = [match.rule_id for match in matches if match.action == "competitor"]
    if not rules:
        return 0
    sentiment = score_sentiment(item.text)
    CompetitorMention.objects.bulk_create(
        [
            CompetitorMention(
                tenant_id=account.tenant_id,
                rule_id=rule_id,
                brand_id=account.brand_id,
                platform=item.platform,
                external_id=item.external_id[:128],
                external_url=(item.url or "")[:500],
                author_handle=item.author.handle[:128],
                author_name=item.author.display_name[:200],
                author_followers=min(max(0, item.author.followers or 0), 2**31 - 1),
                text=item.text,
                language=(item.language or "")[:16],
                sentiment=sentiment,
                posted_at=item.created_at,
            )
            for rule_id in rules
        ],
        ignore_conflicts=True,
    )
    return len(rules)


def competitor_rules(membership: Membership) -> QuerySet[ListeningRule]:
    """The workspace's competitor rules, brand joined, by brand and name."""
    return ListeningRule.objects.filter(competitor=True).select_related("brand")


def competitor_mentions(
    membership: Membership,
    *,
    rule: ListeningRule | None = None,
    sentiment: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[CompetitorMention]:
    """The competitor feed, newest first, rule and brand joined; narrowed by rule,
    sentiment and a [start, end) period when given."""
    rows = CompetitorMention.objects.select_related("rule", "brand")
    if rule is not None:
        rows = rows.filter(rule=rule)
    if sentiment:
        rows = rows.filter(sentiment=sentiment)
    if start is not None:
        rows = rows.filter(posted_at__gte=start)
    if end is not None:
        rows = rows.filter(posted_at__lt=end)
    return rows.order_by("-posted_at", "-id")


@dataclass(frozen=True)
class VolumePoint:
    """One bucket of one rule: mentions by sentiment."""

    at: datetime
    negative: int
    neutral: int
    positive: int

    @property
    def total(self) -> int:
        return self.negative + self.neutral + self.positive


@dataclass(frozen=True)
class RuleVolume:
    rule: ListeningRule
    points: list[VolumePoint]


def competitor_volume(
    membership: Membership,
    *,
    start: datetime,
    end: datetime,
    bucket: Bucket,
    rule: ListeningRule | None = None,
) -> list[RuleVolume]:
    """Mentions per competitor rule per day or hour of [start, end), split by
    sentiment, every bucket present (zeros included) in the current time zone.

    One aggregate query; the rules without mentions are listed with zeros too.
    """
    tz = timezone.get_current_timezone()
    counts: dict[tuple[int, datetime, str], int] = {}
    rows = (
        competitor_mentions(membership, rule=rule, start=start, end=end)
        .order_by()
        .annotate(at=Trunc("posted_at", bucket, tzinfo=tz))
        .values("rule_id", "at", "sentiment")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts[(row["rule_id"], row["at"], row["sentiment"])] = row["n"]
    rules = [rule] if rule is not None else list(competitor_rules(membership))
    buckets = _buckets(start, end, bucket)
    return [
        RuleVolume(
            each,
            [
                VolumePoint(
                    at,
                    *(counts.get((each.pk, at, mood), 0) for mood in SENTIMENTS),
                )
                for at in buckets
            ],
        )
        for each in rules
    ]


def _buckets(start: datetime, end: datetime, bucket: Bucket) -> list[datetime]:
    tz = timezone.get_current_timezone()
    local = start.astimezone(tz)
    if bucket == "day":
        at = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        at = local.replace(minute=0, second=0, microsecond=0)
    found = []
    while at < end:
        found.append(at)
        at = _next(at, bucket, tz)
    return found


def _next(at: datetime, bucket: Bucket, tz: tzinfo) -> datetime:
    if bucket == "hour":
        return (at + timedelta(hours=1)).astimezone(tz)
    # A day later on the wall clock (a DST day has 23 or 25 hours).
    return (at.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=tz)
