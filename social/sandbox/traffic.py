"""Realistic traffic for the Sandbox: angry, happy, questions, untagged mentions,
several languages, repeat customers and bursts."""

import random
import threading
import time

from django.db import close_old_connections

from social.sandbox import network
from social.sandbox.models import Person, Post

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
}
WEIGHTS = {
    "angry": 4,
    "happy": 2,
    "question": 3,
    "untagged": 3,
    "french": 1,
    "spanish": 1,
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


def run(
    brand_handle: str, *, rate: float, duration: float, seed: int | None = None
) -> int:
    """Post at about `rate` posts/second for `duration` seconds, with bursts."""
    rng = random.Random(seed)  # noqa: S311 - traffic, not security
    brand = Person.objects.get(handle=brand_handle)
    count, deadline = 0, time.monotonic() + duration
    while time.monotonic() < deadline:
        burst = 3 if rng.random() < 0.1 else 1
        for _ in range(burst):
            one_post(brand, rng)
            count += 1
        time.sleep(rng.expovariate(rate) if rate > 0 else 1.0)
    return count


def start_background(brand_handle: str, *, rate: float) -> threading.Thread:
    """Run traffic forever in a daemon thread (the demo server)."""

    def loop() -> None:
        while True:
            try:
                run(brand_handle, rate=rate, duration=60)
            finally:
                close_old_connections()

    thread = threading.Thread(target=loop, name="sandbox-traffic", daemon=True)
    thread.start()
    return thread
