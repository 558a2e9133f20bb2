"""The simulated day's traffic (manage.py simulate_day): who writes, when, what.

Pure and seeded: the same seed gives the same day, whatever the queue policy, so
the policies are compared on identical traffic. Every random choice about one
conversation draws from its own generator (seed, conversation, purpose), so a
policy that answers sooner changes no later arrival (common random numbers).
"""

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from social.connectors.base import Author

DAY_MINUTES = 24 * 60
# One cancelled flight: 45 minutes at five times the rate of its time of day.
BURST_START_MINUTE = 19 * 60
BURST_MINUTES = 45
BURST_FACTOR = 5
LANGUAGES = ("en", "fr", "es")
LANGUAGE_WEIGHTS = (0.6, 0.2, 0.2)
ANGRY_SHARE = 0.15
DIRECT_SHARE = 0.10
LISTENING_SHARE = 0.08
LARGE_SHARE = 0.01  # of authors, with more than 10k followers
MEDIUM_SHARE = 0.35  # from 100 to 10k followers
GOLDEN = (math.sqrt(5) - 1) / 2

QUESTIONS = {
    "en": (
        "Hi {brand}, can I change my seat on flight {n} to an aisle?",
        "Hello {brand}, how many bags can I bring on flight {n}?",
        "{brand} is there wifi on the {n} to Lisbon tomorrow?",
        "Can I add a meal to booking {n}, {brand}?",
        "Quick one {brand}: what time does boarding open for flight {n}?",
    ),
    "fr": (
        "Bonjour {brand}, puis-je changer de siège sur le vol {n} ?",
        "{brand} combien de bagages pour le vol {n} svp ?",
        "Salut {brand}, y a-t-il du wifi sur le vol {n} demain ?",
        "Peut-on ajouter un repas à la réservation {n}, {brand} ?",
    ),
    "es": (
        "Hola {brand}, ¿puedo cambiar mi asiento en el vuelo {n}?",
        "{brand} ¿cuántas maletas puedo llevar en el vuelo {n}?",
        "Hola {brand}, ¿hay wifi en el vuelo {n} de mañana?",
        "¿Puedo añadir una comida a la reserva {n}, {brand}?",
    ),
}
BURST_QUESTIONS = {
    "en": (
        "{brand} flight {n} to Lisbon shows as not operating. Can I rebook tonight?",
        "{brand} what are my options for flight {n}? It says not operating.",
    ),
    "fr": ("{brand} le vol {n} ne part pas ce soir, puis-je changer de vol ?",),
    "es": ("{brand} el vuelo {n} no sale hoy, ¿puedo cambiar mi vuelo?",),
}
ANGRY = {
    "en": (
        "{brand} flight {n} cancelled again and nobody answers. Unacceptable!",
        "Worst airline ever {brand}. Flight {n} delayed for hours, I want a refund",
        "{brand} you lost my bag on flight {n}. Terrible service",
    ),
    "fr": (
        "{brand} vol {n} annulé, service nul, je veux un remboursement",
        "{brand} retard énorme sur le vol {n}, c'est inacceptable",
    ),
    "es": (
        "{brand} vuelo {n} con retraso otra vez, servicio pésimo",
        "{brand} el peor servicio, el vuelo {n} con retraso y nadie responde",
    ),
}
CHASERS = {
    "en": "Still waiting {brand}. This is ridiculous",
    "fr": "Toujours rien {brand}, c'est inacceptable",
    "es": "Sigo sin respuesta {brand}, servicio pésimo",
}
AGAIN = {
    "en": "That does not help, {brand}. Flight {n} is still a terrible mess",
    "fr": "Ça ne m'aide pas {brand}, le vol {n} est toujours en retard, nul",
    "es": "Eso no ayuda {brand}, el vuelo {n} sigue con retraso, pésimo",
}
PRIVATE = {
    "en": "Here is my booking for flight {n}: ref {ref}. Please sort it out",
    "fr": "Voici ma réservation du vol {n} : réf {ref}. Merci de régler ça",
    "es": "Aquí está mi reserva del vuelo {n}: ref {ref}. Por favor, resuélvanlo",
}


@dataclass(frozen=True)
class Arrival:
    """One customer's first message of the day and what they will do next."""

    index: int
    at: datetime
    author: Author
    language: str
    channel: str  # "mention" | "listening" | "direct"
    angry: bool
    text: str
    flight: int


def _rate(minute: float) -> float:
    """Arrivals per minute, up to a constant: a quiet night, a day peak, a burst."""
    hour = minute / 60
    day = max(0.0, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else 0.0
    rate = 0.3 + 0.7 * day
    if BURST_START_MINUTE <= minute < BURST_START_MINUTE + BURST_MINUTES:
        rate *= BURST_FACTOR
    return rate


def _arrival_minutes(volume: int, rng: random.Random) -> list[float]:
    """`volume` arrival times (minutes after midnight) drawn from the day's rate."""
    weights = [_rate(minute + 0.5) for minute in range(DAY_MINUTES)]
    minutes = rng.choices(range(DAY_MINUTES), weights=weights, k=volume)
    return sorted(minute + rng.random() for minute in minutes)


def generator(seed: int, *parts: object) -> random.Random:
    """A generator of its own for one purpose of one conversation."""
    return random.Random(":".join(str(part) for part in (seed, *parts)))  # noqa: S311


def _followers(index: int, offset: float, rng: random.Random) -> int:
    """Followers of the author of the day's `index`-th conversation.

    The band is spread evenly over the day (a golden-ratio sequence from a seeded
    offset: exactly 1% above 10k, 35% from 100 to 10k), so each band meets the
    burst and the quiet hours in the same proportions and a difference between
    the bands' response times comes from the queue, not from where the dice fell.
    """
    position = (offset + index * GOLDEN) % 1.0
    if position < LARGE_SHARE:
        return rng.randint(10_001, 2_000_000)
    if position < LARGE_SHARE + MEDIUM_SHARE:
        return rng.randint(100, 10_000)
    return rng.randint(0, 99)


def plan_day(volume: int, seed: int, *, day: datetime, brand: str) -> list[Arrival]:
    """The day's first messages, in time order: a diurnal curve, the burst, 1% of
    authors above 10k followers, angry threads, listening finds, private messages,
    English, French and Spanish."""
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not a secret
    offset = rng.random()
    arrivals = []
    for index, minute in enumerate(_arrival_minutes(volume, rng)):
        own = generator(seed, index, "arrival")
        language = own.choices(LANGUAGES, weights=LANGUAGE_WEIGHTS)[0]
        roll = own.random()
        channel = (
            "direct"
            if roll < DIRECT_SHARE
            else "listening"
            if roll < DIRECT_SHARE + LISTENING_SHARE
            else "mention"
        )
        angry = own.random() < ANGRY_SHARE
        in_burst = BURST_START_MINUTE <= minute < BURST_START_MINUTE + BURST_MINUTES
        pool = ANGRY if angry else BURST_QUESTIONS if in_burst else QUESTIONS
        flight = 212 if in_burst else own.randint(100, 999)
        mention = "" if channel == "listening" else f"@{brand} "
        text = own.choice(pool[language]).format(brand=brand, n=flight)
        arrivals.append(
            Arrival(
                index=index,
                at=day + timedelta(minutes=minute),
                author=Author(
                    external_id=f"sim-author-{index}",
                    handle=f"traveller{index}",
                    display_name=f"Traveller {index}",
                    followers=_followers(index, offset, own),
                ),
                language=language,
                channel=channel,
                angry=angry,
                text=(mention + text) if channel == "mention" else text,
                flight=flight,
            )
        )
    return arrivals


REPLY_OPENINGS = {
    "en": (
        "Hi {name},",
        "Hello {name},",
        "Thanks {name},",
        "{name}, thanks for writing.",
    ),
    "fr": ("Bonjour {name},", "Merci {name},", "Salut {name},"),
    "es": ("Hola {name},", "Gracias {name},", "Buenas {name},"),
}
REPLY_BODIES = {
    "en": (
        "I checked flight {n} for you",
        "I looked at booking {n}",
        "your flight {n} is noted",
        "flight {n} is in front of me now",
    ),
    "fr": (
        "j'ai vérifié le vol {n}",
        "je regarde la réservation {n}",
        "le vol {n} est noté",
    ),
    "es": ("revisé el vuelo {n}", "miro la reserva {n}", "el vuelo {n} está anotado"),
}
REPLY_CLOSINGS = {
    "en": (
        "and it is all set (case {case}).",
        "and I have updated it, case {case}.",
        "so you are covered; case {case}.",
    ),
    "fr": ("et c'est réglé (dossier {case}).", "et tout est à jour, dossier {case}."),
    "es": ("y ya está resuelto (caso {case}).", "y lo actualicé, caso {case}."),
}
INVITES = {
    "en": "Sorry {name}, let's fix this privately: please send us a DM (case {case}).",
    "fr": "Désolé {name}, écrivez-nous en privé pour régler ça (dossier {case}).",
    "es": "Lo siento {name}, escríbenos por privado para resolverlo (caso {case}).",
}


def reply_text(language: str, *, name: str, flight: int, rng: random.Random) -> str:
    """A short personal answer in the customer's language (never a template copy)."""
    case = rng.randint(10_000, 99_999)
    return " ".join(
        (
            rng.choice(REPLY_OPENINGS[language]).format(name=name),
            rng.choice(REPLY_BODIES[language]).format(n=flight),
            rng.choice(REPLY_CLOSINGS[language]).format(case=case),
        )
    )


def invite_text(language: str, *, name: str, rng: random.Random) -> str:
    """The public invitation to continue in private (R4)."""
    return INVITES[language].format(name=name, case=rng.randint(10_000, 99_999))
