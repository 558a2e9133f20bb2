"""The SLA clock (R9, R10): response targets in business time, and the care facts.

A conversation runs at most one response clock at a time (the `sla_*` fields of
Conversation). A customer message starts one when none runs: kind `first` until
the conversation was first answered, then `next`; lane `urgent` when the policy
says so (negative sentiment, an urgent tag), else `normal`. The target is business
time in the brand's calendar (weekly hours, time zone, holidays; a brand without
weekly hours counts calendar time). `sla_due_soon_at` starts the last 20% of the
target. `queue_at` is the due time less a bounded reach bonus (R10).

A queued agent reply or a move to private stops the clock (R5) and records a
response fact; waiting on the customer may pause it (the brand's "pause while
pending"); resolving clears it and records a resolution fact. The automatic away
reply (helpdesk.services.away) is not a response and never touches the clock.

Every function here runs inside the transaction of the change, with the
conversation's row locked and its `brand` loaded. Each CareFact is created once,
there, and added to the rollups (helpdesk.services.rollups.apply_fact) in the same
transaction. Functions that change the clock set the conversation's attributes and
return the changed fields; the caller saves them (`update_fields`) and puts them
in its conversation.updated event (see `jsonable`).
"""

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import F, JSONField, Model, Q
from django.db.models.base import ModelState
from django.db.models.expressions import RawSQL
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.signals import post_init, pre_init

from helpdesk.models import (
    CareFact,
    Conversation,
    ConversationTag,
    FollowerBand,
    Identity,
    SlaKind,
    SlaLane,
)
from helpdesk.services import rollups, writebatch
from tenants.calendar import (
    Calendar,
    add_business_seconds,
    add_business_seconds_each,
    brand_calendar,
    business_seconds,
    is_business_time,
)
from tenants.models import Brand, SlaPolicy, User

Changed = dict[str, object]
# The last fifth of a target is "due soon".
DUE_SOON_NUMERATOR, DUE_SOON_DENOMINATOR = 8, 10
# Negative sentiment moves a conversation up by this much (within the window).
NEGATIVE_BONUS = timedelta(minutes=1)
# A first response after a "no reply needed" mark (rollups leave it out of rates).
AFTER_NO_REPLY = "after_no_reply"


@dataclass(frozen=True)
class Targets:
    """A brand's SLA targets, in seconds of business time."""

    first: int = 3600
    next: int = 3600
    resolution: int | None = None
    urgent_first: int = 600
    urgent_next: int = 600
    urgent_on_negative: bool = True
    urgent_tags: tuple[str, ...] = ()

    def seconds(self, kind: str, lane: str) -> int:
        """The response target for a clock of `kind` in `lane`."""
        urgent = lane == SlaLane.URGENT
        if kind == SlaKind.FIRST:
            return self.urgent_first if urgent else self.first
        return self.urgent_next if urgent else self.next


DEFAULT_TARGETS = Targets()


def band_for(followers: int) -> FollowerBand:
    """The follower band of an author: <100 small, 100..10,000 medium, >10,000 large."""
    if followers < 100:
        return FollowerBand.SMALL
    if followers <= 10_000:
        return FollowerBand.MEDIUM
    return FollowerBand.LARGE


def policy_for(brand: Brand) -> Targets:
    """The brand's targets: its own SlaPolicy, else the workspace fallback (no
    brand), else DEFAULT_TARGETS. One query; call in the brand's tenant context."""
    policy = (
        SlaPolicy.objects.filter(Q(brand_id=brand.pk) | Q(brand__isnull=True))
        .order_by(F("brand_id").asc(nulls_last=True))
        .first()
    )
    if policy is None:
        return DEFAULT_TARGETS
    return targets_of(
        {f: getattr(policy, f) for f in POLICY_FIELDS},
    )


# Attributes a loader may set on a Brand instance it read together with the brand's
# SLA policy and holidays (social.api_channel does, in the same statement), so the
# clock reads neither again. Only for the instance's own request: never cache it.
PRELOADED_TARGETS = "_earshot_sla_targets"
PRELOADED_HOLIDAYS = "_earshot_holidays"


POLICY_FIELDS = (
    "first_response_minutes",
    "next_response_minutes",
    "resolution_minutes",
    "urgent_first_response_minutes",
    "urgent_next_response_minutes",
    "urgent_on_negative",
    "urgent_tags",
)


# The policy's columns that targets_of reads, as one JSON object built in
# PostgreSQL (row_to_json(p)::jsonb made the whole row's text, ids and times
# included, and parsed it again as jsonb).
_POLICY_OBJECT = (
    "jsonb_build_object("
    + ", ".join(f"'{name}', p.\"{name}\"" for name in POLICY_FIELDS)
    + ")"
)


def targets_of(policy: Mapping[str, Any] | None) -> Targets:
    """Targets from a policy row's columns (as a dict; None: the defaults)."""
    if policy is None:
        return DEFAULT_TARGETS
    resolution = policy["resolution_minutes"]
    return Targets(
        first=policy["first_response_minutes"] * 60,
        next=policy["next_response_minutes"] * 60,
        resolution=resolution * 60 if resolution is not None else None,
        urgent_first=policy["urgent_first_response_minutes"] * 60,
        urgent_next=policy["urgent_next_response_minutes"] * 60,
        urgent_on_negative=policy["urgent_on_negative"],
        urgent_tags=tuple(str(name) for name in policy["urgent_tags"] or ()),
    )


def brand_time_annotations(table: str, *, policy: bool = True) -> dict[str, RawSQL]:
    """Annotations that read the SLA policy and holidays of the brand of `table`'s
    row (it has tenant_id and brand_id) with that row, on PostgreSQL (none
    elsewhere); pass the annotated row to `preload_annotated`. `policy=False`:
    the holidays only (stopping a clock needs no targets)."""
    if connection.vendor != "postgresql":
        return {}
    # `table` is a model's table name, never input.
    policy_sql = (
        f'(SELECT {_POLICY_OBJECT} FROM "tenants_slapolicy" p'  # noqa: S608
        f' WHERE p."tenant_id" = {table}.tenant_id'
        f" AND (p.brand_id = {table}.brand_id OR p.brand_id IS NULL)"
        " ORDER BY p.brand_id NULLS LAST LIMIT 1)"
    )
    holidays = (
        "(SELECT coalesce(jsonb_agg(jsonb_build_array(h.start_date, h.end_date)),"  # noqa: S608
        " '[]'::jsonb) FROM \"tenants_holiday\" h"
        f' WHERE h."tenant_id" = {table}.tenant_id AND h.brand_id = {table}.brand_id)'
    )
    annotations = {
        "preloaded_holidays": RawSQL(holidays, [], JSONField()),  # noqa: S611
    }
    if policy:
        annotations["preloaded_sla_policy"] = RawSQL(  # noqa: S611
            policy_sql, [], JSONField()
        )
    return annotations


@dataclass(frozen=True)
class _Span:
    start_date: date
    end_date: date


def preload_annotated(row: Any, brand: Brand) -> None:
    """`preload` from a row annotated with brand_time_annotations (no-op without)."""
    if not hasattr(row, "preloaded_holidays"):
        return
    holidays = [
        _Span(date.fromisoformat(first), date.fromisoformat(last))
        for first, last in row.preloaded_holidays
    ]
    if hasattr(row, "preloaded_sla_policy"):
        preload(brand, row.preloaded_sla_policy, holidays)
    else:
        setattr(brand, PRELOADED_HOLIDAYS, holidays)


def preload(brand: Brand, policy: Mapping[str, Any] | None, holidays: Any) -> None:
    """Attach the brand's policy row (dict or None) and holidays (objects with
    start_date and end_date) read with it, for BrandTime."""
    setattr(brand, PRELOADED_TARGETS, targets_of(policy))
    setattr(brand, PRELOADED_HOLIDAYS, list(holidays))


def reach_bonus(
    followers: int, window: timedelta, *, negative: bool = False
) -> timedelta:
    """How far reach (and negative sentiment) may move a conversation up the queue.

    Log-scaled in followers (1k: 1 min, 100k: 3 min, 10M: 5 min; none up to 100),
    plus NEGATIVE_BONUS for negative sentiment, never more than `window` (the
    brand's queue window, R10).
    """
    bonus = timedelta(0)
    if followers > 100:
        bonus = timedelta(minutes=math.log10(followers) - 2)
    if negative:
        bonus += NEGATIVE_BONUS
    return max(timedelta(0), min(bonus, window))


class BrandTime:
    """A brand's calendar and targets, each read at most once per change."""

    def __init__(self, brand: Brand) -> None:
        self.brand = brand
        self._calendar: Calendar | None = None
        self._targets: Targets | None = None
        # Instants already known to be in (or out of) business time.
        self._open: dict[datetime, bool] = {}

    @property
    def calendar(self) -> Calendar:
        if self._calendar is None:
            holidays = getattr(self.brand, PRELOADED_HOLIDAYS, None)
            self._calendar = brand_calendar(self.brand, holidays)
        return self._calendar

    @property
    def targets(self) -> Targets:
        if self._targets is None:
            preloaded = getattr(self.brand, PRELOADED_TARGETS, None)
            self._targets = preloaded or policy_for(self.brand)
        return self._targets

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.brand.queue_window_minutes)

    def due_times(
        self, start: datetime, seconds: tuple[int, ...]
    ) -> list[datetime | None]:
        """`add_business_seconds` of each of `seconds` from `start` (one walk),
        learning on the way whether `start` is in business time: it is when no
        business time at all brings it to itself."""
        *due, opening = add_business_seconds_each(self.calendar, start, (*seconds, 0))
        self._open[start] = opening == start
        return due

    def is_open(self, at: datetime) -> bool:
        """`is_business_time` of the calendar at `at`."""
        known = self._open.get(at)
        if known is None:
            known = self._open[at] = is_business_time(self.calendar, at)
        return known


def jsonable(changed: Changed) -> Changed:
    """`changed` with datetimes as ISO strings and choices as their plain values,
    for an event payload."""
    out: Changed = {}
    for key, value in changed.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Enum):
            value = value.value
        out[key] = value
    return out


def _assign(conversation: Conversation, values: Changed) -> Changed:
    changed: Changed = {}
    for name, value in values.items():
        if getattr(conversation, name) != value:
            setattr(conversation, name, value)
            changed[name] = value
    return changed


def _cleared() -> Changed:
    return {
        "sla_kind": "",
        "sla_started_at": None,
        "sla_run_started_at": None,
        "sla_used_seconds": 0,
        "sla_target_seconds": None,
        "sla_due_at": None,
        "sla_due_soon_at": None,
        "sla_breached_at": None,
        "queue_at": None,
    }


def _deadlines(
    conversation: Conversation,
    time: BrandTime,
    *,
    run_start: datetime,
    target: int,
    used: int,
    followers: int,
) -> Changed:
    soon_at = target * DUE_SOON_NUMERATOR // DUE_SOON_DENOMINATOR
    due, soon = time.due_times(run_start, (target - used, soon_at - used))
    negative = conversation.sentiment == Conversation.Sentiment.NEGATIVE
    bonus = reach_bonus(followers, time.window, negative=negative)
    return {
        "sla_due_at": due,
        "sla_due_soon_at": soon,
        "queue_at": due - bonus if due is not None else None,
    }


def _urgent(conversation: Conversation, targets: Targets, *, fresh: bool) -> bool:
    negative = conversation.sentiment == Conversation.Sentiment.NEGATIVE
    if targets.urgent_on_negative and negative:
        return True
    if fresh or not targets.urgent_tags:
        return False
    return ConversationTag.objects.filter(
        conversation_id=conversation.pk, tag__name__in=targets.urgent_tags
    ).exists()


def customer_message_clock(
    conversation: Conversation,
    *,
    brand: Brand,
    at: datetime,
    followers: int,
    negative: bool,
    opened: bool,
) -> Changed:
    """Keep the clock for a customer message posted at `at` by an author with
    `followers`; `negative` says the message itself read negative.

    Call after the message's counters and sentiment were applied. No clock
    running: start one (kind, lane, target, due, due soon, queue position,
    follower band; the resolution due time with the conversation's first
    message). A paused clock resumes from `at`. A running normal clock moves to
    the urgent lane when the message is negative and the policy says so. `opened`
    also records the `opened` fact. Costs at most two queries (policy, holidays)
    when a clock starts, none while one runs.
    """
    time = BrandTime(brand)
    changed: Changed = {}
    if not conversation.sla_kind:
        changed = _start(conversation, time, at=at, followers=followers, fresh=opened)
    elif conversation.sla_run_started_at is None:
        changed = _resume(conversation, time, at=at, followers=followers)
    if (
        negative
        and conversation.sla_kind
        and conversation.sla_lane == SlaLane.NORMAL
        and time.targets.urgent_on_negative
    ):
        changed |= _to_urgent(conversation, time, followers=followers)
    if opened:
        _record_opened(conversation, time)
    return changed


def _start(
    conversation: Conversation,
    time: BrandTime,
    *,
    at: datetime,
    followers: int,
    fresh: bool,
) -> Changed:
    targets = time.targets
    kind = SlaKind.FIRST if conversation.first_response_at is None else SlaKind.NEXT
    urgent = _urgent(conversation, targets, fresh=fresh)
    lane = SlaLane.URGENT if urgent else SlaLane.NORMAL
    target = targets.seconds(kind, lane)
    values: Changed = {
        **_cleared(),
        "sla_kind": kind,
        "sla_lane": lane,
        "sla_started_at": at,
        "sla_run_started_at": at,
        "sla_target_seconds": target,
        "follower_band": band_for(followers),
        **_deadlines(
            conversation, time, run_start=at, target=target, used=0, followers=followers
        ),
    }
    first = conversation.first_customer_message_at
    if targets.resolution is not None and first and not conversation.resolution_due_at:
        values["resolution_due_at"] = add_business_seconds(
            time.calendar, first, targets.resolution
        )
    return _assign(conversation, values)


def _resume(
    conversation: Conversation, time: BrandTime, *, at: datetime, followers: int
) -> Changed:
    values: Changed = {
        "sla_run_started_at": at,
        **_deadlines(
            conversation,
            time,
            run_start=at,
            target=conversation.sla_target_seconds or 0,
            used=conversation.sla_used_seconds,
            followers=followers,
        ),
    }
    return _assign(conversation, values)


def _to_urgent(
    conversation: Conversation, time: BrandTime, *, followers: int
) -> Changed:
    target = time.targets.seconds(conversation.sla_kind, SlaLane.URGENT)
    values: Changed = {"sla_lane": SlaLane.URGENT, "sla_target_seconds": target}
    if conversation.sla_run_started_at is not None:
        values |= _deadlines(
            conversation,
            time,
            run_start=conversation.sla_run_started_at,
            target=target,
            used=conversation.sla_used_seconds,
            followers=followers,
        )
    return _assign(conversation, values)


def record_fact(
    conversation: Conversation,
    kind: str,
    *,
    started_at: datetime,
    at: datetime,
    **fields: object,
) -> CareFact:
    """Create one CareFact of `kind` with the conversation's dimensions as they are
    now (brand, account, platform, origin, sentiment, follower band, lane) plus
    `fields`, and add it to the rollups. Call once, in the change's transaction."""
    values = {
        "tenant_id": conversation.tenant_id,
        "kind": kind,
        "brand_id": conversation.brand_id,
        "account_id": conversation.social_account_id,
        "platform": conversation.platform,
        "origin": conversation.origin,
        "sentiment": conversation.sentiment,
        "follower_band": conversation.follower_band,
        "lane": conversation.sla_lane,
        "started_at": started_at,
        "at": at,
        **fields,
    }
    fact = _new_fact(conversation, values)
    batch = writebatch.current()
    if batch is None:
        fact.save(force_insert=True)
    else:  # written with the batch (helpdesk.services.writebatch)
        batch.insert([fact])
    rollups.apply_fact(fact)
    return fact


def _new_fact(conversation: Conversation, values: dict[str, object]) -> CareFact:
    """`CareFact(conversation=conversation, **values)`: when every name of
    `values` is a plain column's attname and no pre_init/post_init receiver is
    connected, the instance `Model.__init__` would make (its state, every column
    in `__dict__`, the conversation cached), without running it (about 25 us of
    a fact's 50 on the bench machine)."""
    plain, required, defaults = _fact_shape()
    if (
        pre_init.receivers
        or post_init.receivers
        or not plain
        or not plain.issuperset(values)
        or not required.issubset(values)
    ):
        return CareFact(conversation=conversation, **values)
    fact: CareFact = _new(CareFact)
    state = ModelState()
    state.fields_cache["conversation"] = conversation
    stored = fact.__dict__
    stored["_state"] = state
    stored.update(defaults)
    stored["conversation_id"] = conversation.pk
    stored.update(values)
    return fact


_new = object.__new__


@cache
def _fact_shape() -> tuple[frozenset[str], frozenset[str], dict[str, object]]:
    """The attnames `_new_fact` takes, those it must be given (a callable
    default), and the other columns' defaults; nothing when CareFact has its own
    `__init__` or a column attribute with a setter (foreign keys' aside: set by
    their attname, as `__init__` sets them)."""
    if CareFact.__init__ is not Model.__init__:
        return frozenset(), frozenset(), {}
    plain, required, defaults = set(), set(), {}
    for field in CareFact._meta.concrete_fields:
        attribute = inspect.getattr_static(CareFact, field.attname, None)
        if hasattr(type(attribute), "__set__") and not isinstance(
            attribute, ForeignKeyDeferredAttribute
        ):
            return frozenset(), frozenset(), {}
        if field.name == "conversation":
            continue
        plain.add(field.attname)
        if field.has_default() and callable(field.default):
            required.add(field.attname)
        else:
            defaults[field.attname] = field.get_default()
    return frozenset(plain), frozenset(required), defaults


def _record_opened(conversation: Conversation, time: BrandTime) -> CareFact:
    started = conversation.first_customer_message_at or conversation.created_at
    return record_fact(
        conversation,
        CareFact.Kind.OPENED,
        started_at=started,
        at=started,
        off_hours=not time.is_open(started),
    )


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()))


def stop_for_response(
    conversation: Conversation, *, at: datetime, agent: User, visibility: str
) -> tuple[CareFact | None, Changed]:
    """The agent's reply (or move to private) queued at `at` stops the clock (R5).

    No clock running: nothing, (None, {}). Otherwise records the `first_response`
    fact (with reason "after_no_reply" when the conversation was marked "no reply
    needed") or the `next_response` fact: raw seconds since the clock started,
    business seconds used, the target, whether it was breached, `visibility`
    ("private" for a private reply and for a move to private), and whether the
    clock started outside business hours. Clears the clock. One query (holidays)
    besides the fact's.
    """
    started = conversation.sla_started_at
    if not conversation.sla_kind or started is None:
        return None, {}
    calendar = BrandTime(conversation.brand).calendar
    used = conversation.sla_used_seconds
    if conversation.sla_run_started_at is not None:
        used += business_seconds(calendar, conversation.sla_run_started_at, at)
    target = conversation.sla_target_seconds
    first = conversation.sla_kind == SlaKind.FIRST
    fact = record_fact(
        conversation,
        CareFact.Kind.FIRST_RESPONSE if first else CareFact.Kind.NEXT_RESPONSE,
        started_at=started,
        at=at,
        agent=agent,
        visibility=visibility,
        reason=AFTER_NO_REPLY if first and conversation.no_reply_reason else "",
        raw_seconds=_seconds(started, at),
        business_seconds=used,
        target_seconds=target,
        breached=target is not None and used > target,
        off_hours=not is_business_time(calendar, started),
    )
    return fact, _assign(conversation, _cleared())


def stop_without_response(conversation: Conversation) -> Changed:
    """Clear the clock without a response fact (resolution, "no reply needed")."""
    return _assign(conversation, _cleared())


def pause_clock(conversation: Conversation, *, at: datetime) -> Changed:
    """Waiting on the customer from `at`: bank the business seconds of the current
    run and stop counting, when the brand pauses while pending. Otherwise, or with
    no clock running, nothing changes."""
    run_start = conversation.sla_run_started_at
    if not conversation.brand.pause_while_pending:
        return {}
    if not conversation.sla_kind or run_start is None:
        return {}
    calendar = BrandTime(conversation.brand).calendar
    used = conversation.sla_used_seconds + business_seconds(calendar, run_start, at)
    values: Changed = {
        "sla_used_seconds": used,
        "sla_run_started_at": None,
        "sla_due_at": None,
        "sla_due_soon_at": None,
        "queue_at": None,
    }
    return _assign(conversation, values)


def _followers(conversation: Conversation) -> int:
    # The customer's reach on this platform, for a queue position recomputed
    # without a message in hand.
    return (
        Identity.objects.filter(
            contact_id=conversation.contact_id, platform=conversation.platform
        )
        .order_by("-followers")
        .values_list("followers", flat=True)
        .first()
    ) or 0


def resume_clock(conversation: Conversation, *, at: datetime) -> Changed:
    """Count a paused clock again from `at` (the conversation was reopened): the
    target less the seconds used before the pause. Nothing when no clock is paused.
    Reads the author's reach for the queue position (one query) and the holidays.
    """
    if not conversation.sla_kind or conversation.sla_run_started_at is not None:
        return {}
    return _resume(
        conversation,
        BrandTime(conversation.brand),
        at=at,
        followers=_followers(conversation),
    )


def tags_changed_clock(conversation: Conversation) -> Changed:
    """The conversation's tags changed: a running normal clock moves to the urgent
    lane (same start, same used seconds) when it now carries one of the policy's
    urgent tags. Nothing otherwise. Call after the tags were written, in the same
    transaction, with the row locked; reads the policy, then (only with urgent
    tags) the tags, the holidays and the author's reach.
    """
    if not conversation.sla_kind or conversation.sla_lane == SlaLane.URGENT:
        return {}
    time = BrandTime(conversation.brand)
    targets = time.targets
    if not targets.urgent_tags or not _urgent(conversation, targets, fresh=False):
        return {}
    return _to_urgent(conversation, time, followers=_followers(conversation))


def record_resolution(
    conversation: Conversation, *, at: datetime, agent: User | None
) -> tuple[CareFact | None, Changed]:
    """The conversation is resolved at `at`: record the `resolution` fact (raw and
    business seconds since its first customer message, the resolution target, if
    any, and whether it was exceeded) and clear the clock. No fact for a
    conversation without a customer message. Reads the policy and the holidays."""
    first = conversation.first_customer_message_at
    fact = None
    if first is not None:
        time = BrandTime(conversation.brand)
        used = business_seconds(time.calendar, first, at)
        target = time.targets.resolution
        fact = record_fact(
            conversation,
            CareFact.Kind.RESOLUTION,
            started_at=first,
            at=at,
            agent=agent,
            raw_seconds=_seconds(first, at),
            business_seconds=used,
            target_seconds=target,
            breached=target is not None and used > target,
            off_hours=not is_business_time(time.calendar, first),
        )
    return fact, stop_without_response(conversation)


def record_breach(conversation: Conversation, *, at: datetime) -> CareFact | None:
    """Record that the running clock passed its due time, once.

    Idempotent: None when the clock was already marked breached, when no clock
    runs, or when it is not due at `at`. Otherwise sets `sla_breached_at` (on the
    given instance too) and records the `breach` fact (raw seconds since the clock
    started, the target; no business seconds). Locks the row in its own atomic
    block; emits nothing (the caller sends the events and the webhook).
    """
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .filter(pk=conversation.pk)
            .first()
        )
        if locked is None or locked.sla_breached_at is not None:
            return None
        due, started = locked.sla_due_at, locked.sla_started_at
        if not locked.sla_kind or due is None or started is None or due > at:
            return None
        locked.sla_breached_at = at
        locked.save(update_fields=["sla_breached_at"])
        conversation.sla_breached_at = at
        return record_fact(
            locked,
            CareFact.Kind.BREACH,
            started_at=started,
            at=at,
            raw_seconds=_seconds(started, at),
            target_seconds=locked.sla_target_seconds,
            breached=True,
        )
