"""R15, answer here: is a public reply only sending the customer elsewhere?

A pure check (no database). A public reply *deflects* when it points the customer
to another channel ("call our hotline", "email us", "visit our website", "DM us
on WhatsApp") and does nothing else: no clause that answers, and no invitation to
a private message on the conversation's own platform (R4, "switch channels, don't
switch platforms").

How a reply is read:
- it is split into clauses (sentences, and the parts of a sentence between commas
  or semicolons);
- a clause *deflects* when it holds one of the brand's deflection phrases (per
  language, `Brand.deflection_phrases`; a language the brand has not set uses
  `DEFAULT_PHRASES`), or invites a private message while naming another platform;
- a clause *invites* when it asks for a private message ("DM us", "message privé",
  "mensaje privado", "Direktnachricht") without naming another platform;
- a clause *answers* when it neither deflects nor invites, is not a courtesy
  ("sorry to hear that", "thanks for your patience"), and has at least
  `ANSWER_MIN_WORDS` words (links, addresses and numbers are not words).
The reply deflects when some clause deflects and none answers or invites. Every
language's phrases are checked whatever the reply's language: the phrases are
specific enough, and a reply mixing languages is still read.
"""

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping

WARNING_DEFLECTION = "deflection"
DEFLECTION_MESSAGE = (
    "This public reply only sends the customer elsewhere ({phrase}). Answer here, "
    "or invite a private message on this platform; spectators see the reply too."
)

# Shape of the brand setting: {"en": ["call our hotline", ...], ...}.
LANGUAGE_CODE = re.compile(r"^[a-z]{2}$")
MAX_LANGUAGES = 20
MAX_PHRASES = 60
PHRASE_MIN_CHARS = 3
PHRASE_MAX_CHARS = 80
ANSWER_MIN_WORDS = 5

DEFAULT_PHRASES: dict[str, list[str]] = {
    "en": [
        "call our hotline",
        "call our helpline",
        "call our customer service",
        "call our support",
        "call us on",
        "call us at",
        "give us a call",
        "phone us",
        "ring us",
        "email us",
        "e-mail us",
        "send us an email",
        "drop us an email",
        "write to us at",
        "visit our website",
        "visit our site",
        "check our website",
        "see our website",
        "on our website",
        "visit our help center",
        "visit our help centre",
        "contact our customer service",
        "contact customer service",
        "contact our support team",
        "contact form",
        "fill in the form",
        "fill out the form",
    ],
    "fr": [
        "appelez notre",
        "appelez-nous",
        "appelez le service client",
        "contactez notre service client",
        "contactez le service client",
        "envoyez-nous un e-mail",
        "envoyez-nous un mail",
        "envoyez-nous un courriel",
        "écrivez-nous à",
        "rendez-vous sur notre site",
        "consultez notre site",
        "visitez notre site",
        "sur notre site",
        "formulaire de contact",
    ],
    "es": [
        "llame a nuestra línea",
        "llame a nuestro",
        "llámenos",
        "llámanos",
        "envíenos un correo",
        "envíanos un correo",
        "escríbanos a",
        "escríbenos a",
        "visite nuestra web",
        "visita nuestra web",
        "visite nuestro sitio",
        "visita nuestra página",
        "en nuestra web",
        "formulario de contacto",
        "contacte con atención al cliente",
        "contacta con atención al cliente",
    ],
    "de": [
        "rufen sie unsere hotline",
        "rufen sie uns an",
        "ruf uns an",
        "unsere hotline",
        "schreiben sie uns eine e-mail",
        "schreib uns eine mail",
        "senden sie uns eine e-mail",
        "per e-mail an",
        "besuchen sie unsere website",
        "besuchen sie unsere webseite",
        "auf unserer website",
        "auf unserer webseite",
        "kontaktformular",
        "wenden sie sich an unseren kundenservice",
        "wenden sie sich an den kundenservice",
    ],
}

# An invitation to a private message (R4); it counts when it names no other platform.
INVITE_PATTERN = re.compile(
    r"\b(?:dm|dms|pm|direct message|private message|private messages|message us|"
    r"send us a message|mp|message privé|messages privés|en privé|"
    r"md|mensaje privado|mensaje directo|por privado|"
    r"direktnachricht|privatnachricht|pn)\b"
)
# Names of platforms; one other than the conversation's in an invitation moves the
# customer to another platform.
PLATFORM_NAMES: dict[str, tuple[str, ...]] = {
    "x": ("twitter", "x"),
    "meta": ("facebook", "messenger", "instagram"),
    "facebook": ("facebook", "messenger"),
    "instagram": ("instagram",),
    "whatsapp": ("whatsapp",),
    "reddit": ("reddit",),
    "mastodon": ("mastodon",),
    "bluesky": ("bluesky",),
    "tiktok": ("tiktok",),
    "linkedin": ("linkedin",),
    "telegram": ("telegram",),
    "youtube": ("youtube",),
}
ALL_PLATFORM_NAMES = frozenset(
    name for names in PLATFORM_NAMES.values() for name in names
)
COURTESY_PATTERN = re.compile(
    r"\b(?:sorry|apolog\w*|thanks?|thank you|hi|hello|hey|dear|understand\w*|"
    r"frustrat\w*|inconvenience|désolée?s?|excuses|merci|bonjour|salut|comprenons|"
    r"lo siento|lo sentimos|disculp\w*|gracias|hola|entendemos|"
    r"tut uns leid|entschuldig\w*|danke|hallo|verstehen)\b"
)
COURTESY_MAX_WORDS = 12
_CLAUSES = re.compile(r"[.!?;,\n]+(?=\s|$)|[;\n]+")
_NOT_WORDS = re.compile(r"https?://\S+|\S+@\S+|www\.\S+|[@#]\w+|\+?\d[\d\s\-/()]*")
_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")


def normalize(text: str) -> str:
    """Lower case, NFC, one space between words (phrases and replies alike)."""
    text = unicodedata.normalize("NFC", text).lower().replace("\u2019", "'")
    return " ".join(text.split())


def phrases_for(brand_phrases: Mapping[str, Iterable[str]] | None) -> list[str]:
    """Every phrase that applies: the brand's own per language it has set, the
    defaults for the others."""
    chosen = dict(DEFAULT_PHRASES)
    for language, phrases in (brand_phrases or {}).items():
        chosen[language] = list(phrases)
    return sorted({normalize(p) for phrases in chosen.values() for p in phrases if p})


def _contains(clause: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", clause) is not None


# A brand's phrases as a hashable key: ((language, (phrase, ...)), ...).
PhrasesKey = tuple[tuple[str, tuple[str, ...]], ...]


def _phrases_key(
    brand_phrases: Mapping[str, Iterable[str]] | None,
) -> PhrasesKey | None:
    """The setting as a key for `_phrase_matcher`, or None when it is not the
    stored shape (texts keyed by language, in lists)."""
    if not brand_phrases:
        return ()
    items = []
    for language, phrases in brand_phrases.items():
        if type(language) is not str or type(phrases) not in (list, tuple):
            return None
        if not all(type(phrase) is str for phrase in phrases):
            return None
        items.append((language, tuple(phrases)))
    return tuple(sorted(items))


@functools.lru_cache(maxsize=256)
def _phrase_matcher(key: PhrasesKey) -> tuple[list[str], re.Pattern[str] | None]:
    """`phrases_for` of the setting `key` stands for, and one pattern that finds
    a clause holding any of them as `_contains` reads it (None for no phrase)."""
    phrases = phrases_for({language: list(texts) for language, texts in key})
    if not phrases:
        return phrases, None
    either = "|".join(re.escape(phrase) for phrase in phrases)
    return phrases, re.compile(rf"(?<!\w)(?:{either})(?!\w)")


def _other_platform(clause: str, platform: str) -> bool:
    own = set(PLATFORM_NAMES.get(platform, (platform,)))
    words = set(_WORD.findall(clause))
    return bool((words & ALL_PLATFORM_NAMES) - own)


def _words(clause: str) -> list[str]:
    return _WORD.findall(_NOT_WORDS.sub(" ", clause))


def deflecting_phrase(
    text: str,
    *,
    platform: str,
    brand_phrases: Mapping[str, Iterable[str]] | None = None,
) -> str | None:
    """The phrase that sends the customer elsewhere when `text`, a public reply on
    `platform`, does nothing but that; None when the reply answers, invites a
    private message on this platform, or sends nobody away."""
    # Phrases and their pattern are worked out once per setting: building the
    # phrases and one search per phrase and clause cost 0.5-0.7 ms per reply.
    key = _phrases_key(brand_phrases)
    if key is None:
        phrases, anywhere = phrases_for(brand_phrases), None
    else:
        phrases, anywhere = _phrase_matcher(key)
    found: str | None = None
    for raw in _CLAUSES.split(normalize(text)):
        clause = raw.strip()
        if not clause:
            continue
        hit = None
        # The pattern matches where some phrase does; which one is the first
        # phrase in order that the clause holds, as without it.
        if anywhere is None or anywhere.search(clause) is not None:
            hit = next((p for p in phrases if _contains(clause, p)), None)
        invites = INVITE_PATTERN.search(clause) is not None
        if hit is None and invites and _other_platform(clause, platform):
            hit = clause if len(clause) <= 60 else clause[:59] + "…"
        if hit is not None:
            found = found or hit
            continue
        if invites:
            return None
        words = _words(clause)
        courtesy = bool(COURTESY_PATTERN.search(clause))
        courtesy = courtesy and len(words) <= COURTESY_MAX_WORDS
        if not courtesy and len(words) >= ANSWER_MIN_WORDS:
            return None
    return found


def deflection_warning(
    text: str,
    *,
    platform: str,
    brand_phrases: Mapping[str, Iterable[str]] | None = None,
) -> str | None:
    """The composer's warning for a deflecting public reply (R15), or None."""
    phrase = deflecting_phrase(text, platform=platform, brand_phrases=brand_phrases)
    if phrase is None:
        return None
    return DEFLECTION_MESSAGE.format(phrase=f"“{phrase}”")


def deflection_settings_errors(value: object) -> list[str]:
    """What is wrong with a brand's phrases setting ({"en": ["call us", ...]}), one
    message per problem, each naming the language and the phrase's position."""
    if not isinstance(value, dict):
        return [
            'Give an object of phrase lists per language, e.g. {"en": ["call us"]}.'
        ]
    errors: list[str] = []
    if len(value) > MAX_LANGUAGES:
        errors.append(f"Give at most {MAX_LANGUAGES} languages.")
    for language, phrases in value.items():
        if not isinstance(language, str) or not LANGUAGE_CODE.match(language):
            errors.append(f"{language!r} is not a two-letter language code (en, fr).")
            continue
        if not isinstance(phrases, list):
            errors.append(f"{language}: give a list of phrases.")
            continue
        if len(phrases) > MAX_PHRASES:
            errors.append(f"{language}: give at most {MAX_PHRASES} phrases.")
        for number, phrase in enumerate(phrases, start=1):
            if not isinstance(phrase, str):
                errors.append(f"{language}, phrase {number}: give a text.")
                continue
            size = len(phrase.strip())
            if not PHRASE_MIN_CHARS <= size <= PHRASE_MAX_CHARS:
                errors.append(
                    f"{language}, phrase {number}: give {PHRASE_MIN_CHARS} to "
                    f"{PHRASE_MAX_CHARS} characters."
                )
    return errors


def clean_deflection_settings(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """The setting as stored: phrases normalised, duplicates dropped, order kept.
    Call after `deflection_settings_errors` found nothing."""
    return {
        language: list(dict.fromkeys(normalize(p) for p in phrases))
        for language, phrases in sorted(value.items())
    }
