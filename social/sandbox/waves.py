"""Waves for the Sandbox traffic: now and then a flight is cancelled and dozens of
its passengers post about it within a minute, so the demo shows a real inbound
spike (R13) with clear top terms. One wave every WAVE_EVERY seconds, the first
after FIRST_WAVE."""

import random
import time

from social.sandbox import network
from social.sandbox.models import Person

FIRST_WAVE = 600.0
WAVE_EVERY = (900.0, 1500.0)
WAVE_POSTS = (35, 50)
TEXTS = (
    "@{brand} flight {flight} cancelled and nobody at the gate knows anything",
    "@{brand} {flight} cancelled?! Stuck at the gate with two kids",
    "@{brand} is {flight} really cancelled? The app still says on time",
    "@{brand} my {flight} was cancelled, where do I rebook?",
    "@{brand} {flight} cancelled. Worst airline ever.",
    "@{brand} vol {flight} annulé, personne à la porte d'embarquement",
)


class Wave:
    """When the next wave comes; `step` posts it once it is due."""

    def __init__(self, first_after: float = FIRST_WAVE) -> None:
        self.next_at = time.monotonic() + first_after

    def step(self, rng: random.Random, brand: Person) -> int:
        """Post a wave if one is due; returns how many posts (0 when none)."""
        now = time.monotonic()
        if now < self.next_at:
            return 0
        self.next_at = now + rng.uniform(*WAVE_EVERY)
        flight = f"AA{rng.randint(10, 99)}"
        posts = rng.randint(*WAVE_POSTS)
        for n in range(posts):
            person, _ = Person.objects.get_or_create(
                handle=f"passenger_{flight.lower()}_{n}",
                defaults={"name": f"Passenger {n + 1} of {flight}", "followers": 50},
            )
            text = rng.choice(TEXTS).format(brand=brand.handle, flight=flight)
            network.create_post(person, text)
        return posts
