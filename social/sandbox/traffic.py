"""Realistic traffic for the Sandbox: angry, happy, questions, untagged mentions,
several languages, repeat customers and bursts."""

import random
import threading
import time

from django.db import close_old_connections

from social.sandbox import network
from social.sandbox.models import Person, Post
from social.sandbox.waves import Wave

CUSTOMERS = [
    ("jo_travels", "Jo Martin", 180),
    ("samira_k", "Samira K.", 2400),
    ("lucas.dubois", "Lucas Dubois", 95),
    ("maria_g", "María García", 610),
    ("ben_flies", "Ben", 12),
    ("travelqueen", "Aisha (Travel Queen)", 152_000),
    ("tom_h", "Tom Hughes", 40),
    ("yuki", "Yuki Tanaka", 830),
]
TEMPLATES = {
    "angry": [
        "@{brand} flight {flight} delayed AGAIN. Third time this month. Unacceptable!!",
        "@{brand} you lost my bag and nobody answers the phone. Worst airline ever.",
        "Stuck at the gate for 2 hours, no info from @{brand}. Ridiculous.",
    ],
    "happy": [
        "Thanks @{brand}, the crew on {flight} was amazing today!",
        "Great upgrade on {flight}, love you @{brand}",
    ],
    "question": [
        "@{brand} can I bring a second cabin bag on {flight}?",
        "@{brand} how do I change the name on my booking?",
    ],
    "untagged": [
        "{brand_name} cancelled my flight to Lisbon and the refund form is broken",
        "Anyone else waiting forever for {brand_name} baggage at T2?",
        "Honestly {brand_name} customer service is getting worse",
    ],
    "french": [
        "@{brand} mon vol {flight} est en retard, aucune information. Inacceptable."
    ],
    "spanish": ["@{brand} perdieron mi maleta en Madrid, ¿qué hago?"],
    # A competitor's name, untagged: the demo's "Sky Rival" rule feeds these to
    # the competitor feed (advocacy), never the inbox.
    "competitor": [
        "Sky Rival delayed my flight {flight} by 3 hours, awful",
        "Flew skyrival to Lisbon, on time and lovely crew",
        "#skyrival or the others for Madrid next week?",
    ],
}
WEIGHTS = {
    "angry": 4,
    "happy": 2,
    "question": 3,
    "untagged": 3,
    "french": 1,
    "spanish": 1,
    "competitor": 1,
}


def _customer(rng: random.Random) -> Person:
    handle, name, followers = rng.choice(CUSTOMERS)
    person, _ = Person.objects.get_or_create(
        handle=handle, defaults={"name": name, "followers": followers}
    )
    return person


def one_post(brand: Person, rng: random.Random) -> Post:
    """Publish one realistic customer post (sometimes a follow-up in a thread)."""
    customer = _customer(rng)
    earlier = Post.objects.filter(author=customer, in_reply_to__isnull=True).first()
    if earlier is not None and rng.random() < 0.25:
        text = rng.choice(
            ["Hello?? Anyone there?", "Still waiting for an answer.", "Any news?"]
        )
        post, _ = network.create_post(customer, text, in_reply_to=earlier)
        return post
    kind = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    text = rng.choice(TEMPLATES[kind]).format(
        brand=brand.handle, brand_name=brand.name, flight=f"AA{rng.randint(10, 99)}"
    )
    language = {"french": "fr", "spanish": "es"}.get(kind, "en")
    post, _ = network.create_post(customer, text, language=language)
    return post


# Now and then one fresh complaint catches on: for a few minutes a crowd reposts
# and likes it, so the inbox shows a thread spreading (R13).
SPREAD_CHANCE = 0.02  # per post published
SPREAD_SECONDS = (120.0, 360.0)


class Spread:
    """The thread the crowd is sharing now, if any, and until when."""

    def __init__(self) -> None:
        self.post_id: int | None = None
        self.until = 0.0

    def step(self, rng: random.Random, latest: Post) -> None:
        """Grow the spreading thread's counters, or start one on `latest` (a
        customer's new thread) by chance."""
        now = time.monotonic()
        if self.post_id is not None and now < self.until:
            network.spread_post(
                self.post_id, reposts=rng.randint(2, 12), likes=rng.randint(5, 30)
            )
            return
        self.post_id = None
        if latest.in_reply_to_id is None and rng.random() < SPREAD_CHANCE:
            self.post_id, self.until = latest.pk, now + rng.uniform(*SPREAD_SECONDS)


def run(
    brand_handle: str,
    *,
    rate: float,
    duration: float,
    seed: int | None = None,
    spread: Spread | None = None,
    wave: Wave | None = None,
) -> int:
    """Post at about `rate` posts/second for `duration` seconds, with bursts; now
    and then one new thread spreads for a few minutes (`Spread`)."""
    rng = random.Random(seed)  # noqa: S311 - traffic, not security
    brand = Person.objects.get(handle=brand_handle)
    spread = spread or Spread()
    count, deadline = 0, time.monotonic() + duration
    while time.monotonic() < deadline:
        burst = 3 if rng.random() < 0.1 else 1
        for _ in range(burst):
            post = one_post(brand, rng)
            count += 1
        spread.step(rng, post)
        count += wave.step(rng, brand) if wave is not None else 0
        time.sleep(rng.expovariate(rate) if rate > 0 else 1.0)
    return count


def start_background(brand_handle: str, *, rate: float) -> threading.Thread:
    """Run traffic forever in a daemon thread (the demo server)."""

    spread = Spread()  # outlives each minute's run
    wave = Wave()  # the cancelled flights' waves (R13 spikes in the demo)

    def loop() -> None:
        while True:
            try:
                run(brand_handle, rate=rate, duration=60, spread=spread, wave=wave)
            finally:
                close_old_connections()

    thread = threading.Thread(target=loop, name="sandbox-traffic", daemon=True)
    thread.start()
    return thread
