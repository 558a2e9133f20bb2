"""Sentiment and anger of one customer message, from maintained lexicons.

Every lexicon ships inside its wheel; nothing is downloaded at run time (no
nltk data is used).

Languages and how each is scored (`score` in [-1, 1]):
- English: VADER (vaderSentiment), its compound score; it reads negation,
  intensifiers, "but", capitals, exclamation marks, emoticons and emoji.
- French: textblob-fr's pattern lexicon (polarity of its adjectives, with
  negation and modifiers).
- German: textblob-de's German polarity lexicon (Klenner et al., Apache 2.0),
  read with textblob-fr's pattern engine: textblob-de's own code no longer
  imports under textblob 0.18+ (it needs the removed textblob.translate and
  textblob.compat), so only its bundled lexicon file is used.
- Spanish, Italian, Portuguese, Dutch: no installed package has a lexicon;
  only emoji and emoticons are read (VADER with the words taken out, since its
  English words misread false friends such as German "die" or Spanish "sin").
  A French or German message its lexicon finds nothing in is read the same way.
  Spanish then falls back to the old scorer's rule (its four Spanish words,
  three exclamation marks, two shouted words; not a package: kept so that
  Spanish reads no worse than before).
- Unknown language (too short to tell, helpdesk.language): VADER on the whole
  text, as most short posts are English or emoji.

The label is "negative" at or below -NEUTRAL_BAND, "positive" at or above it.
The anger signal: a negative message that is strongly negative (score at or
below ANGER_SCORE) or is shouted (a word of four or more capitals, repeated
"!" or "?!").

It orders the queue within the bounded window and labels conversations; it
never decides whether to answer (R10).
"""

import importlib.util
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from helpdesk.language import detect_language

NEUTRAL_BAND = 0.05
# No package reads Spanish: the old word list's Spanish words stay as a floor.
SPANISH_NEGATIVE = frozenset(("peor", "pésimo", "retraso"))
SPANISH_POSITIVE = frozenset(("gracias",))
GERMAN_NEGATIONS = (
    "nicht",
    "ohne",
    "nie",
    "nein",
    "kein",
    "keine",
    "keiner",
    "keinen",
    "nichts",
)
ANGER_SCORE = -0.6

_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
_EXCLAIMED = re.compile(r"!\s*!|\?\s*!|!\s*\?")


@dataclass(frozen=True, slots=True)
class Reading:
    """What one message says beyond its words: language, sentiment, anger."""

    language: str  # ISO 639-1 code, "" when unknown (helpdesk.language)
    score: float  # -1 (negative) .. 1 (positive)
    label: str  # "negative" | "neutral" | "positive"
    angry: bool


def score_sentiment(text: str) -> str:
    """'negative', 'positive' or 'neutral' for one message."""
    return read_message(text).label


@lru_cache(maxsize=256)
def read_message(text: str) -> Reading:
    """Language, score, label and anger of one message.

    Cached for the last few texts: the inbound paths read the same text when
    they build the message row and again when they update the conversation.
    """
    language = detect_language(text)
    score = round(_score(text, language), 4)
    if score <= -NEUTRAL_BAND:
        label = "negative"
    elif score >= NEUTRAL_BAND:
        label = "positive"
    else:
        label = "neutral"
    angry = label == "negative" and (
        score <= ANGER_SCORE
        or any(len(word) >= 4 and word.isupper() for word in _LETTERS.findall(text))
        or _EXCLAIMED.search(text) is not None
    )
    return Reading(language=language, score=score, label=label, angry=angry)


def covered(language: str) -> bool:
    """Whether a package has a lexicon for this language (else only VADER's cues)."""
    return language in ("en", "fr", "de")


def _score(text: str, language: str) -> float:
    if language in ("en", ""):
        return float(_vader().polarity_scores(text)["compound"])
    if language in ("fr", "de"):
        polarity = float(_pattern(language)(text)[0])
        if polarity:
            return max(-1.0, min(1.0, polarity))
    # Another language: VADER reads only what is not a word (emoji, emoticons);
    # its English words would misread false friends ("die", "sin").
    cues = float(_vader().polarity_scores(_LETTERS.sub(" ", text))["compound"])
    if cues or language != "es":
        return cues
    # Spanish: the old scorer's rule (its Spanish words, three "!" or two shouted
    # words count against), so it reads no worse than before.
    found = _LETTERS.findall(text)
    words = [word.lower() for word in found]
    shouted = sum(1 for word in found if len(word) > 3 and word.isupper())
    negative = sum(word in SPANISH_NEGATIVE for word in words)
    negative += (text.count("!") >= 3) + (shouted >= 2)
    net = sum(word in SPANISH_POSITIVE for word in words) - negative
    return max(-1.0, min(1.0, net / 2))


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import (
        SentimentIntensityAnalyzer,
    )

    return SentimentIntensityAnalyzer()


@cache
def _pattern(language: str) -> Any:
    """textblob-fr's sentiment (fr), or its engine over textblob-de's lexicon (de)."""
    if language == "fr":
        from textblob_fr.fr import sentiment

        return sentiment
    from textblob_fr._text import Sentiment

    class GermanSentiment(Sentiment):
        def load(self, path: str | None = None) -> None:
            super().load(path)
            # The lexicon capitalises nouns; the engine looks words up in
            # lower case.
            for word, tags in list(self.items()):
                lower = word.lower()
                if lower != word and lower not in self:
                    for tag, (polarity, subjectivity, intensity) in tags.items():
                        self.annotate(lower, tag, polarity, subjectivity, intensity)

    spec = importlib.util.find_spec("textblob_de")  # not imported: see above
    if spec is None or not spec.submodule_search_locations:
        msg = "textblob-de (its German lexicon) is not installed"
        raise RuntimeError(msg)
    path = Path(next(iter(spec.submodule_search_locations))) / "data/de-sentiment.xml"
    return GermanSentiment(
        path=str(path),
        synset=None,
        negations=GERMAN_NEGATIONS,
        modifiers=("RB",),
        modifier=lambda word: word.endswith("lich"),
        language="de",
    )


def warm() -> None:
    """Load the language model and every lexicon now (about 3 s) rather than on
    the first message a process reads."""
    read_message.__wrapped__("Warm the readers up, thank you.")
    for language in ("fr", "de"):
        _pattern(language)("")
