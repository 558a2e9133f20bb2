"""Thirty days of answered history for the demo workspace, so its reports page
has something true to show (`manage.py seed_demo` calls `seed_history`).

Every step goes through the product's services on a travelling clock
(time-machine), so the care facts and rollups are the ones the live system would
have recorded: customers write through `record_inbound_message`, agents answer
through `post_reply` and `move_to_private`, deliveries are recorded by the
delivery service, and conversations are resolved or marked "no reply needed".
The traffic is seeded, so every demo shows the same month.
"""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import time_machine
from django.utils import timezone

from helpdesk.models import Conversation, Message
from helpdesk.services.delivery import record_delivery
from helpdesk.services.inbound import record_inbound_message
from helpdesk.services.lifecycle import resolve_conversation
from helpdesk.services.no_reply import mark_no_reply
from helpdesk.services.replies import post_reply
from social.connectors.base import Author, DeliveryResult, InboundItem
from social.models import SocialAccount
from tenants.calendar import add_business_seconds, brand_calendar
from tenants.models import Membership

COMPLAINTS = (
    "My flight {code} was delayed three hours and nobody told us anything.",
    "Still waiting for my refund for {code}, it has been two weeks.",
    "Lost bag on {code}. Who do I talk to?",
    "Why was my seat changed on {code} without asking me?",
    "Mon vol {code} est annulé, que dois-je faire ?",
    "¿Dónde está mi maleta del vuelo {code}?",
    "Can I bring my guitar as cabin baggage on {code}?",
    "The app won't let me check in for {code}.",
)
FOLLOW_UPS = (
    "Thanks, but it still isn't sorted.",
    "I sent the DM, any news?",
    "Any update please?",
)
ANSWERS = (
    "Sorry about {code}, {name}. Let me look into it right now.",
    "Thanks for flagging this, {name}: checking {code} with the airport team.",
    "{name}, I understand how frustrating that is. I'm on it for {code}.",
    "Good question, {name}! Let me check the rules for {code} for you.",
)
NEXT_ANSWERS = (
    "Thanks for waiting, {name}: it's sorted now for {code}.",
    "Update for {code}, {name}: your case is with our baggage team, ref {ref}.",
)


@dataclass(frozen=True)
class _Arrival:
    at: datetime
    account: SocialAccount
    followers: int
    private: bool


def seed_history(
    accounts: Sequence[SocialAccount],
    agents: Sequence[Membership],
    *,
    days: int = 30,
    per_day: int = 6,
    seed: int = 7,
) -> int:
    """Write `days` of closed conversations ending yesterday; returns how many.

    Call inside the tenant's context; `accounts` are its connected accounts (one
    brand), `agents` memberships that may answer. Deterministic for a `seed`.
    """
    rng = random.Random(seed)  # noqa: S311 - demo traffic, not secrets
    brand = accounts[0].brand
    calendar = brand_calendar(brand)
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    arrivals: list[_Arrival] = []
    for day in range(days, 0, -1):
        midnight = today - timedelta(days=day)
        for _ in range(rng.randint(per_day // 2, per_day * 3 // 2)):
            # Diurnal: most customers write between 07:00 and 22:00.
            hour = min(23.9, max(0.0, rng.gauss(14, 4)))
            arrivals.append(
                _Arrival(
                    at=midnight + timedelta(hours=hour),
                    account=rng.choice(accounts),
                    followers=_followers(rng),
                    private=rng.random() < 0.2,
                )
            )
    arrivals.sort(key=lambda arrival: arrival.at)
    for serial, arrival in enumerate(arrivals, start=1):
        opens = add_business_seconds(calendar, arrival.at, 0) or arrival.at
        delay = timedelta(minutes=rng.lognormvariate(math.log(14), 0.8))
        _one_conversation(rng, serial, arrival, max(opens, arrival.at) + delay, agents)
    return len(arrivals)


def _followers(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.01:
        return rng.randint(11_000, 400_000)
    if roll < 0.25:
        return rng.randint(100, 9_000)
    return rng.randint(0, 99)


def _one_conversation(
    rng: random.Random,
    serial: int,
    arrival: _Arrival,
    answer_at: datetime,
    agents: Sequence[Membership],
) -> None:
    code = f"AA{rng.randint(10, 999)}"
    name = f"Customer {serial}"
    agent = rng.choice(agents)
    with time_machine.travel(arrival.at, tick=False):
        conversation = _post(
            arrival, serial, rng.choice(COMPLAINTS).format(code=code), name, 0
        )
    fate = rng.random()
    if fate < 0.04:
        with time_machine.travel(answer_at, tick=False):
            mark_no_reply(
                conversation, membership=agent, reason=rng.choice(["thanks", "spam"])
            )
            resolve_conversation(conversation, membership=agent)
        return
    if fate < 0.07:  # never answered: closed in a tidy-up a day later
        with time_machine.travel(arrival.at + timedelta(days=1), tick=False):
            resolve_conversation(conversation, membership=agent)
        return
    text = rng.choice(ANSWERS).format(code=code, name=name.split()[0])
    answer(conversation, agent, text, answer_at)
    done_at = answer_at + timedelta(minutes=rng.randint(5, 90))
    if rng.random() < 0.3:
        follow_at = answer_at + timedelta(minutes=rng.randint(10, 240))
        with time_machine.travel(follow_at, tick=False):
            _post(arrival, serial, rng.choice(FOLLOW_UPS), name, 1)
        again_at = follow_at + timedelta(minutes=rng.lognormvariate(math.log(20), 0.7))
        text = rng.choice(NEXT_ANSWERS).format(
            code=code, name=name.split()[0], ref=rng.randint(1000, 9999)
        )
        answer(conversation, agent, text, again_at)
        done_at = again_at + timedelta(minutes=rng.randint(5, 60))
    with time_machine.travel(done_at, tick=False):
        resolve_conversation(conversation, membership=agent)


def _post(
    arrival: _Arrival, serial: int, text: str, name: str, part: int
) -> Conversation:
    account = arrival.account
    external = f"demo-history-{serial}-{part}"
    item = InboundItem(
        platform=account.platform,
        external_id=external,
        author=Author(
            external_id=f"{account.platform}-history-{serial}",
            handle=f"customer{serial}",
            display_name=name,
            followers=arrival.followers,
            profile_url="",
        ),
        text=text,
        created_at=timezone.now(),
        visibility="private" if arrival.private else "public",
        kind="direct_message" if arrival.private else "mention",
        thread_ref=f"demo-history-{serial}-0",
        mentions_account=not arrival.private,
    )
    return record_inbound_message(account, item, away_reply=False).conversation


def answer(
    conversation: Conversation, agent: Membership, text: str, at: datetime
) -> None:
    """A public reply by `agent` at `at`, sent (post_reply, then the delivery
    recorded), as the demo's history and advocates answer."""
    with time_machine.travel(at, tick=False):
        current = Conversation.objects.select_related("brand", "social_account").get(
            pk=conversation.pk
        )
        message = post_reply(
            current,
            membership=agent,
            text=text,
            confirm=("near_duplicate", "stale_view"),
        ).message
        Message.objects.filter(pk=message.pk).update(delivery_status="sending")
        record_delivery(
            message.pk,
            DeliveryResult(external_id=f"demo-history-out-{message.pk}", sent_at=at),
        )
