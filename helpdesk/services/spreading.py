"""Spread (R13): engagement velocity flags a public conversation "spreading".

social.engagement reads each open public conversation's engagement (reposts,
likes, replies, quotes of the customer's post) on a schedule that backs off with
age (`next_read_at`) and records the totals here. The velocity is the engagement
gained per hour between the last two reads (the first read counts from the post's
time, at least FIRST_READ_FLOOR ago). At or above the brand's
`spreading_threshold` the conversation is flagged (`spreading_since`); it stays
flagged until the velocity falls under half the threshold (so a thread on the
edge does not blink).

A conversation that starts spreading moves up, and R10 still holds:
- a running normal clock moves to the urgent lane: the urgent target from the
  clock's start, and when that is already over, the urgent target from now,
  never later than the due time it had. The due time never moves before `now`
  unless it was there already, so a spreading conversation is never placed past
  another customer's breach (whose due time is before `now`);
- `queue_at` gets the brand's whole window (due less W), which the queue key
  clamps as it does reach (helpdesk.queue): nothing moves more than W, or past a
  conversation that is breached or due first.
Both the start and the end of a spread are conversation.updated events (the list
row and the thread header re-render); a read that flips nothing emits nothing.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db import transaction

from helpdesk import events
from helpdesk.models import Conversation, SlaLane
from helpdesk.services.sla import (
    DUE_SOON_DENOMINATOR,
    DUE_SOON_NUMERATOR,
    BrandTime,
    Changed,
    jsonable,
)
from tenants.calendar import add_business_seconds
from tenants.models import Tenant

# How often a conversation's engagement is read, by the age of its first
# customer message: every 2 minutes in the first hour, then less often; never
# after TRACK_FOR (a thread that old has spread or will not).
REFRESH_BANDS: tuple[tuple[timedelta, timedelta], ...] = (
    (timedelta(hours=1), timedelta(minutes=2)),
    (timedelta(hours=6), timedelta(minutes=10)),
    (timedelta(hours=24), timedelta(minutes=30)),
    (timedelta(days=3), timedelta(hours=2)),
)
TRACK_FOR = REFRESH_BANDS[-1][0]
# A first read divides by the post's age, at least this long, so a post read a
# few seconds after it appeared does not look like it spreads.
FIRST_READ_FLOOR = timedelta(minutes=10)
# Reads closer together than this keep the previous velocity (a rate over a few
# seconds is noise); the total is still recorded.
MIN_SPAN = timedelta(seconds=30)
# Spreading ends below this share of the threshold (hysteresis).
CLEAR_SHARE = 0.5


def next_read_at(posted: datetime, *, at: datetime) -> datetime:
    """When to read a post's engagement next after reading it at `at`. Past
    TRACK_FOR: TRACK_FOR later, by when its conversation has left the reads
    (social.engagement reads conversations younger than TRACK_FOR)."""
    age = at - posted
    for older_than, every in REFRESH_BANDS:
        if age < older_than:
            return at + every
    return at + TRACK_FOR


def velocity(
    conversation: Conversation, *, total: int, posted: datetime, at: datetime
) -> float | None:
    """Engagement gained per hour since the last read (from `posted` at the
    first); None when the last read is too recent to tell."""
    if conversation.engagement_read_at is None:
        span = max(at - posted, FIRST_READ_FLOOR)
        gained = total
    else:
        span = at - conversation.engagement_read_at
        gained = total - conversation.engagement_total
        if span < MIN_SPAN:
            return None
    return max(0.0, gained / (span.total_seconds() / 3600))


def record_engagement(
    tenant: Tenant,
    totals: Mapping[int, int],
    *,
    posted: Mapping[int, datetime],
    at: datetime,
) -> list[int]:
    """Record the engagement totals read at `at` for conversations (by id), with
    the time of each one's customer post (`posted`, for the first velocity and
    the schedule); returns the ids that started spreading.

    Call inside the tenant's context. Locks the rows (id order), saves the
    engagement fields and the next read, flags or clears `spreading_since` against
    the brand's threshold, and on a start moves the conversation up (module
    docstring). One conversation.updated event per flip, after commit. Resolved
    conversations and ids of other tenants are skipped (not found).
    """
    if not totals:
        return []
    started: list[int] = []
    flips: list[events.EventSpec] = []
    with transaction.atomic():
        rows = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("brand")
            .filter(pk__in=list(totals))
            .exclude(status=Conversation.Status.RESOLVED)
            .order_by("pk")
        )
        for conversation in rows:
            changed = _record(
                conversation,
                total=totals[conversation.pk],
                posted=posted.get(conversation.pk, conversation.created_at),
                at=at,
            )
            if "spreading_since" not in changed:
                continue
            if conversation.spreading_since is not None:
                started.append(conversation.pk)
            flips.append(
                (
                    "conversation.updated",
                    {
                        "conversation_id": conversation.pk,
                        "brand_id": conversation.brand_id,
                        "changed": jsonable(changed),
                    },
                )
            )
        events.emit_many(tenant.pk, flips)
    return started


def _record(
    conversation: Conversation, *, total: int, posted: datetime, at: datetime
) -> Changed:
    rate = velocity(conversation, total=total, posted=posted, at=at)
    conversation.engagement_total = total
    conversation.engagement_read_at = at
    conversation.engagement_next_at = next_read_at(posted, at=at)
    fields = ["engagement_total", "engagement_read_at", "engagement_next_at"]
    changed: Changed = {}
    if rate is not None:
        conversation.engagement_per_hour = round(rate, 2)
        fields.append("engagement_per_hour")
        threshold = conversation.brand.spreading_threshold
        if conversation.spreading_since is None and rate >= threshold:
            changed = {"spreading_since": at, **_move_up(conversation, at=at)}
        elif (
            conversation.spreading_since is not None and rate < threshold * CLEAR_SHARE
        ):
            changed = {"spreading_since": None}
        if changed:
            for name, value in changed.items():
                setattr(conversation, name, value)
            changed |= {
                "engagement_total": total,
                "engagement_per_hour": conversation.engagement_per_hour,
            }
    conversation.save(update_fields=sorted({*fields, *changed}))
    return changed


def _move_up(conversation: Conversation, *, at: datetime) -> Changed:
    """The urgent lane and the whole queue window for a running clock (module
    docstring); nothing for a paused clock or none."""
    due = conversation.sla_due_at
    start = conversation.sla_run_started_at
    if not conversation.sla_kind or due is None or start is None:
        return {}
    time = BrandTime(conversation.brand)
    target = time.targets.seconds(conversation.sla_kind, SlaLane.URGENT)
    values: Changed = {}
    if conversation.sla_lane != SlaLane.URGENT:
        calendar = time.calendar
        urgent = add_business_seconds(
            calendar, start, max(0, target - conversation.sla_used_seconds)
        )
        if urgent is not None and urgent < at:
            urgent = add_business_seconds(calendar, at, target)
        new_due = min(due, urgent) if urgent is not None else due
        soon = new_due - timedelta(
            seconds=target
            * (DUE_SOON_DENOMINATOR - DUE_SOON_NUMERATOR)
            // DUE_SOON_DENOMINATOR
        )
        values = {
            "sla_lane": SlaLane.URGENT,
            "sla_target_seconds": target,
            "sla_due_at": new_due,
            "sla_due_soon_at": min(conversation.sla_due_soon_at or soon, soon),
        }
        due = new_due
    values["queue_at"] = due - time.window
    return {
        name: value
        for name, value in values.items()
        if getattr(conversation, name) != value
    }
