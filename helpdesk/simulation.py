"""A simulated day of care (manage.py simulate_day): the product's own code on a
simulated clock, to compare the order agents take work in.

Each policy runs the same seeded day (helpdesk.simulation_traffic) in a throwaway
workspace inside a transaction that is rolled back at the end: a brand staffed
around the clock (its queue window, hold and public reply limit copied from the
brand asked for, when there is one), a Sandbox account and N agents. The clock is
time_machine's, moved from event to event; nothing sleeps. Every customer item
goes through record_inbound_message; agents take the next conversation from
inbox_conversations (earshot), or the same candidates oldest-last-activity first
(fifo, as Chatwoot sorts) or by follower count (loudest); they answer through
post_reply, and move to private (R4) for a customer who writes again, before the
public limit (R3) is used up. Each reply waits out its hold (R5) on the simulated
clock, then is marked sent through helpdesk.services.delivery (no network).
The figures are read from the CareFact rows the product recorded.
"""

import heapq
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from django.db import transaction
from django.utils import timezone

from helpdesk.exceptions import ReplyNeedsConfirmation
from helpdesk.models import CareFact, Conversation, Message, SimulationRun
from helpdesk.queue import QueueItem, queue_order
from helpdesk.selectors import inbox_conversations
from helpdesk.services import delivery
from helpdesk.services.inbound import record_inbound_message
from helpdesk.services.replies import (
    WARNING_NEAR_DUPLICATE,
    move_to_private,
    post_reply,
)
from helpdesk.simulation_traffic import (
    AGAIN,
    CHASERS,
    PRIVATE,
    Arrival,
    generator,
    invite_text,
    plan_day,
    reply_text,
)
from social.connectors.base import DeliveryResult, InboundItem
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tenants.services import create_workspace

POLICIES = ("earshot", "fifo", "loudest")
# A Tuesday with no DST change in UTC; the brand is staffed around the clock.
DAY = datetime(2026, 3, 10, tzinfo=UTC)
# Agents keep working after midnight until the queue is empty, at most this long.
OVERTIME = timedelta(hours=6)
HANDLE_MEDIAN_MINUTES = 4.0
HANDLE_SIGMA = 0.4
# A follower band with fewer first responses than this is listed, not ranked:
# the 90th percentile of a handful of answers is their maximum, not a rate.
FAIRNESS_MIN_ANSWERS = 20
ALL_DAY = {
    day: [["00:00", "24:00"]]
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
Role = Membership.Role


@dataclass(frozen=True)
class DayParameters:
    agents: int
    volume: int
    seed: int
    policies: tuple[str, ...] = POLICIES
    queue_window_minutes: int = 5
    send_hold_seconds: int = 20
    public_reply_limit: int = 2
    self_check: bool = True  # compare each earshot pick with the pure twin

    def as_json(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "volume": self.volume,
            "seed": self.seed,
            "policies": list(self.policies),
            "queue_window_minutes": self.queue_window_minutes,
            "send_hold_seconds": self.send_hold_seconds,
            "public_reply_limit": self.public_reply_limit,
        }


@dataclass
class PolicyResult:
    """What one policy did with the day, from the product's CareFacts."""

    conversations: int
    answered: int
    response_rate: float
    first_response_p50: int | None
    first_response_p90: int | None
    next_response_p90: int | None
    breaches: int
    fairness_ratio: float | None
    band_p90: dict[str, int] = field(default_factory=dict)
    band_answers: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """The figures SimulationRun.results keeps per policy (seconds, a share)."""
        return {
            "response_rate": self.response_rate,
            "first_response_p50": self.first_response_p50,
            "first_response_p90": self.first_response_p90,
            "next_response_p90": self.next_response_p90,
            "breaches": self.breaches,
            "fairness_ratio": self.fairness_ratio,
        }


def percentile(values: list[int], share: float) -> int | None:
    """The nearest-rank percentile (a value of the data), None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def run_policy(params: DayParameters, policy: str) -> PolicyResult:
    """Simulate the seeded day under `policy` in a throwaway workspace; roll it back.

    Call outside any tenant context. Creates a user per agent and the workspace
    inside a transaction that is always rolled back, so nothing of the day stays
    and nothing is sent or enqueued (on-commit work never runs).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    with transaction.atomic():
        with time_machine.travel(DAY, tick=False) as clock:
            world = _World.create(params)
            with tenant_context(world.tenant_id):
                day = _Day(params, policy, world, clock.move_to)
                day.run()
                result = measure(world.brand, end=timezone.now())
        transaction.set_rollback(True)
    return result


@dataclass
class _World:
    tenant_id: int
    brand: Brand
    account: SocialAccount
    agents: list[Membership]

    @classmethod
    def create(cls, params: DayParameters) -> "_World":
        tag = secrets.token_hex(4)
        owner = User.objects.create_user(f"sim-owner-{tag}@simulation.invalid", None)
        membership = create_workspace(owner=owner, name=f"Simulated day {tag}")
        tenant = membership.tenant
        with tenant_context(tenant):
            brand = Brand.objects.get()
            brand.name, brand.timezone, brand.business_hours = "Skyline", "UTC", ALL_DAY
            brand.queue_window_minutes = params.queue_window_minutes
            brand.send_hold_seconds = params.send_hold_seconds
            brand.public_reply_limit = params.public_reply_limit
            brand.save()
            account = SocialAccount.objects.create(
                tenant=tenant,
                brand=brand,
                platform="sandbox",
                external_id=f"sim-{tag}",
                handle="skyline",
            )
            agents = []
            for number in range(1, params.agents + 1):
                user = User.objects.create_user(
                    f"sim-agent-{number}-{tag}@simulation.invalid",
                    None,
                    display_name=f"Agent {number}",
                )
                agents.append(
                    Membership.objects.create(tenant=tenant, user=user, role=Role.AGENT)
                )
        account.tenant = tenant
        account.brand = brand
        for agent in agents:
            agent.tenant = tenant
        return cls(tenant.pk, brand, account, agents)


class _Day:
    """The event loop of one policy's day, inside the throwaway tenant's context."""

    def __init__(
        self,
        params: DayParameters,
        policy: str,
        world: _World,
        move_to: Callable[[datetime], None],
    ) -> None:
        self.params = params
        self.policy = policy
        self.world = world
        self.move_to = move_to
        self.arrivals = plan_day(
            params.volume, params.seed, day=DAY, brand=world.account.handle
        )
        self.events: list[tuple[datetime, int, str, tuple[Any, ...]]] = []
        self.sequence = 0
        self.conversation_of: dict[int, int] = {}  # arrival index → conversation
        self.arrival_of: dict[int, Arrival] = {}  # conversation → arrival
        self.responses: dict[int, int] = {}
        self.working: set[int] = set()
        self.idle: list[int] = list(range(len(world.agents)))
        self.end = DAY + timedelta(days=1) + OVERTIME

    def at(self, when: datetime, kind: str, *payload: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (when, self.sequence, kind, payload))

    def run(self) -> None:
        for arrival in self.arrivals:
            self.at(arrival.at, "arrive", arrival.index)
        handlers: dict[str, Callable[..., None]] = {
            "arrive": self._arrive,
            "chase": self._chase,
            "answer": self._answer,
            "deliver": self._deliver,
            "write": self._customer_writes,
        }
        while self.events:
            when, _, kind, payload = heapq.heappop(self.events)
            if when > self.end:
                break
            self.move_to(when)
            handlers[kind](*payload)

    # --- customers -------------------------------------------------------------

    def _item(
        self, arrival: Arrival, suffix: str, text: str, *, private: bool
    ) -> InboundItem:
        root = f"sim-{arrival.index}-0"
        external_id = f"sim-{arrival.index}-{suffix}"
        if private:
            return InboundItem(
                platform="sandbox",
                external_id=external_id,
                author=arrival.author,
                text=text,
                created_at=timezone.now(),
                visibility="private",
                kind="direct_message",
                thread_ref=f"dm-{arrival.index}",
                language=arrival.language,
            )
        return InboundItem(
            platform="sandbox",
            external_id=external_id,
            author=arrival.author,
            text=text,
            created_at=timezone.now(),
            visibility="public",
            kind="post" if suffix == "0" else "comment",
            thread_ref=root,
            in_reply_to="" if suffix == "0" else root,
            mentions_account=arrival.channel == "mention",
            language=arrival.language,
        )

    def _record(self, item: InboundItem) -> Conversation:
        return record_inbound_message(self.world.account, item).conversation

    def _arrive(self, index: int) -> None:
        arrival = self.arrivals[index]
        private = arrival.channel == "direct"
        conversation = self._record(
            self._item(arrival, "0", arrival.text, private=private)
        )
        self.conversation_of[index] = conversation.pk
        self.arrival_of[conversation.pk] = arrival
        if arrival.angry:
            delay = generator(self.params.seed, index, "chase").uniform(6, 12)
            self.at(timezone.now() + timedelta(minutes=delay), "chase", index)
        self._wake()

    def _chase(self, index: int) -> None:
        arrival = self.arrivals[index]
        conversation = Conversation.objects.get(pk=self.conversation_of[index])
        if conversation.first_response_at is not None:
            return
        text = CHASERS[arrival.language].format(brand=f"@{self.world.account.handle}")
        self._record(
            self._item(arrival, "chase", text, private=arrival.channel == "direct")
        )
        self._wake()

    def _customer_writes(self, index: int, step: str) -> None:
        arrival = self.arrivals[index]
        brand = f"@{self.world.account.handle}"
        if step == "private":
            text = PRIVATE[arrival.language].format(n=arrival.flight, ref=index)
            self._record(self._item(arrival, "private", text, private=True))
        else:
            text = AGAIN[arrival.language].format(brand=brand, n=arrival.flight)
            self._record(
                self._item(arrival, "again", text, private=arrival.channel == "direct")
            )
        self._wake()

    # --- agents ------------------------------------------------------------------

    def _wake(self) -> None:
        for agent in list(self.idle):
            if not self._take(agent):
                return

    def _take(self, agent: int) -> bool:
        conversation_id = self._next(self.world.agents[agent])
        if conversation_id is None:
            if agent not in self.idle:
                self.idle.append(agent)
            return False
        if agent in self.idle:
            self.idle.remove(agent)
        self.working.add(conversation_id)
        arrival = self.arrival_of[conversation_id]
        number = self.responses.get(conversation_id, 0)
        rng = generator(self.params.seed, arrival.index, "handle", number)
        minutes = rng.lognormvariate(math.log(HANDLE_MEDIAN_MINUTES), HANDLE_SIGMA)
        self.at(
            timezone.now() + timedelta(minutes=minutes),
            "answer",
            agent,
            conversation_id,
        )
        return True

    def _next(self, membership: Membership) -> int | None:
        """The conversation the policy takes next: of those waiting for an answer
        (a running clock) that no other agent is writing to."""
        now = timezone.now()
        rows = (
            inbox_conversations(membership, status=Conversation.Status.OPEN, now=now)
            .filter(sla_due_at__isnull=False)
            .values_list(
                "pk",
                "sla_due_at",
                "queue_at",
                "brand__queue_window_minutes",
                "last_activity_at",
            )
        )
        waiting = [
            QueueItem(pk, due, queue_at, timedelta(minutes=window), activity)
            for pk, due, queue_at, window, activity in rows
        ]
        checked = self.policy == "earshot" and self.params.self_check
        if checked and queue_order(waiting, now) != waiting:
            raise AssertionError("inbox_conversations left the pure queue order")
        if self.policy == "fifo":
            waiting.sort(key=lambda item: (item.last_activity, item.id))
        elif self.policy == "loudest":
            waiting.sort(key=lambda item: (-self._followers(item.id), item.id))
        for item in waiting:
            if item.id not in self.working:
                return item.id
        return None

    def _followers(self, conversation_id: int) -> int:
        return self.arrival_of[conversation_id].author.followers

    def _answer(self, agent: int, conversation_id: int) -> None:
        self.working.discard(conversation_id)
        conversation = Conversation.objects.select_related("brand").get(
            pk=conversation_id
        )
        if conversation.sla_due_at is not None:
            for message in self._respond(self.world.agents[agent], conversation):
                assert message.send_after is not None  # noqa: S101 - queued replies
                self.at(message.send_after, "deliver", message.pk, conversation_id)
        self._take(agent)

    def _respond(
        self, membership: Membership, conversation: Conversation
    ) -> list[Message]:
        """Answer as an agent would, within R3 and R4: a customer who writes again
        is moved to private before the public limit is used up."""
        arrival = self.arrival_of[conversation.pk]
        number = self.responses.get(conversation.pk, 0)
        self.responses[conversation.pk] = number + 1
        rng = generator(self.params.seed, arrival.index, "reply", number)
        name = arrival.author.display_name.split()[0]
        limit = conversation.brand.public_reply_limit
        private = conversation.channel_state == Conversation.ChannelState.PRIVATE
        if not private and (
            conversation.public_reply_count >= limit
            or (
                conversation.public_reply_count >= limit - 1
                and conversation.customer_message_count > 1
            )
        ):
            return move_to_private(
                conversation,
                membership=membership,
                public_text=invite_text(arrival.language, name=name, rng=rng),
                private_text=reply_text(
                    arrival.language, name=name, flight=arrival.flight, rng=rng
                ),
                confirm=(WARNING_NEAR_DUPLICATE,),
            )
        visibility = "private" if private else "public"
        for attempt in range(3):
            text = reply_text(
                arrival.language, name=name, flight=arrival.flight, rng=rng
            )
            try:
                return [
                    post_reply(
                        conversation,
                        membership=membership,
                        text=text,
                        visibility=visibility,
                        # A third rewrite that still reads alike goes out as it is.
                        confirm=(WARNING_NEAR_DUPLICATE,) if attempt == 2 else (),
                    ).message
                ]
            except ReplyNeedsConfirmation:
                continue
        raise AssertionError("unreachable: the last attempt confirms")

    # --- delivery (R5) -------------------------------------------------------------

    def _deliver(self, message_id: int, conversation_id: int) -> None:
        token = f"sim-{message_id}"
        if delivery.claim_for_delivery(message_id, token=token) is not None:
            delivery.record_delivery(
                message_id,
                DeliveryResult(
                    external_id=f"sim-out-{message_id}", sent_at=timezone.now()
                ),
            )
        arrival = self.arrival_of[conversation_id]
        if not arrival.angry:
            return
        message = Message.objects.get(pk=message_id)
        rng = generator(self.params.seed, arrival.index, "writes", message.kind)
        if message.kind == Message.Kind.PRIVATE_INVITE:
            delay = rng.uniform(2, 10)
            self.at(
                timezone.now() + timedelta(minutes=delay),
                "write",
                arrival.index,
                "private",
            )
        elif self.responses.get(conversation_id) == 1:
            delay = rng.uniform(3, 15)
            self.at(
                timezone.now() + timedelta(minutes=delay),
                "write",
                arrival.index,
                "again",
            )


def measure(brand: Brand, *, end: datetime) -> PolicyResult:
    """The day's figures from the brand's CareFacts (first and next responses, in
    business seconds) and the clocks still running at `end` past their due time
    (unanswered breaches). Call in the brand's tenant context."""
    facts = list(
        CareFact.objects.filter(brand=brand).values_list(
            "kind", "conversation_id", "business_seconds", "breached", "follower_band"
        )
    )
    opened = {conv for kind, conv, *_ in facts if kind == CareFact.Kind.OPENED}
    first = [f for f in facts if f[0] == CareFact.Kind.FIRST_RESPONSE]
    later = [f for f in facts if f[0] == CareFact.Kind.NEXT_RESPONSE]
    answered = {conv for _, conv, *_ in first}
    overdue = Conversation.objects.filter(
        brand=brand, sla_due_at__isnull=False, sla_due_at__lt=end
    ).count()
    bands: dict[str, list[int]] = {}
    for _, _, seconds, _, band in first:
        bands.setdefault(band, []).append(int(seconds or 0))
    band_p90 = {band: percentile(values, 0.9) or 0 for band, values in bands.items()}
    ranked = [
        band_p90[band]
        for band, values in bands.items()
        if len(values) >= FAIRNESS_MIN_ANSWERS
    ]
    fairness = (
        round(max(ranked) / min(ranked), 2)
        if len(ranked) >= 2 and min(ranked)
        else None
    )
    return PolicyResult(
        conversations=len(opened),
        answered=len(answered),
        response_rate=round(len(answered) / len(opened), 4) if opened else 0.0,
        first_response_p50=percentile([int(f[2] or 0) for f in first], 0.5),
        first_response_p90=percentile([int(f[2] or 0) for f in first], 0.9),
        next_response_p90=percentile([int(f[2] or 0) for f in later], 0.9),
        breaches=sum(1 for f in first + later if f[3]) + overdue,
        fairness_ratio=fairness,
        band_p90=dict(sorted(band_p90.items())),
        band_answers={band: len(values) for band, values in sorted(bands.items())},
    )


@dataclass(frozen=True)
class DayOutcome:
    parameters: DayParameters
    results: dict[str, PolicyResult]
    stored_run_id: int | None = None


def find_brand(slug: str, *, workspace: str | None = None) -> Brand | None:
    """The brand `slug` of workspace `workspace` (any workspace when None, if only
    one has such a brand), with its tenant loaded; None when there is none. Raises
    ValueError when several workspaces have a brand with that slug. Opens each
    workspace's tenant context in turn (a command's edge)."""
    tenants = Tenant.objects.order_by("id")
    if workspace is not None:
        tenants = tenants.filter(slug=workspace)
    found: list[Brand] = []
    for tenant in tenants:
        with tenant_context(tenant):
            brand = Brand.objects.filter(slug=slug).first()
        if brand is not None:
            brand.tenant = tenant
            found.append(brand)
    if len(found) > 1:
        names = ", ".join(f"{b.tenant.slug}/{b.slug}" for b in found)
        raise ValueError(f"several workspaces have a brand {slug!r}: {names}")
    return found[0] if found else None


def simulate_day(
    params: DayParameters, *, brand: Brand | None = None, store: bool = True
) -> DayOutcome:
    """Run the seeded day once per policy (each in its own rolled-back workspace)
    and, when `brand` is given and `store`, keep the figures as a SimulationRun of
    that brand for its reports page. Call outside any tenant context."""
    results = {policy: run_policy(params, policy) for policy in params.policies}
    if brand is None or not store:
        return DayOutcome(params, results)
    with tenant_context(brand.tenant_id):
        run = SimulationRun.objects.create(
            tenant_id=brand.tenant_id,
            brand=brand,
            parameters=params.as_json(),
            results={policy: r.figures() for policy, r in results.items()},
        )
    return DayOutcome(params, results, run.pk)


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def result_table(outcome: DayOutcome) -> list[str]:
    """The printed table: one row per policy, then the follower bands' p90."""
    header = (
        f"{'policy':<8} {'answered':>9} {'rate':>7} {'FR p50':>7} {'FR p90':>7} "
        f"{'NR p90':>7} {'breaches':>8} {'fairness':>8}"
    )
    lines = [header, "-" * len(header)]
    for policy, r in outcome.results.items():
        fairness = "-" if r.fairness_ratio is None else f"{r.fairness_ratio:.2f}"
        lines.append(
            f"{policy:<8} {f'{r.answered}/{r.conversations}':>9} "
            f"{r.response_rate:>7.1%} {_duration(r.first_response_p50):>7} "
            f"{_duration(r.first_response_p90):>7} "
            f"{_duration(r.next_response_p90):>7} {r.breaches:>8} {fairness:>8}"
        )
    lines.append("")
    lines.append(
        "first-response p90 by follower band (answers); the fairness ratio ranks "
        f"bands with at least {FAIRNESS_MIN_ANSWERS} answers"
    )
    for policy, r in outcome.results.items():
        bands = ", ".join(
            f"{band} {_duration(r.band_p90[band])} ({r.band_answers[band]})"
            for band in r.band_p90
        )
        lines.append(f"  {policy:<8} {bands}")
    return lines
