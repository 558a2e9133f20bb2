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
        return _compound(text)
    if language in ("fr", "de"):
        polarity = float(_pattern(language)(text)[0])
        if polarity:
            return max(-1.0, min(1.0, polarity))
    # Another language: VADER reads only what is not a word (emoji, emoticons);
    # its English words would misread false friends ("die", "sin").
    cues = _compound(_LETTERS.sub(" ", text))
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


def _compound(text: str) -> float:
    """VADER's compound score of `text` (the library's, computed faster)."""
    return _reader().compound(text)


@cache
def _reader() -> "_Vader":
    return _Vader(_vader())


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


class _Vader:
    """VADER's compound score, as `polarity_scores(text)["compound"]` computes it,
    with the same arithmetic in the same order (so the same float, to the bit).

    The library lower-cases every word of the text again for each check around
    each lexicon word (negation, idioms, "but"), walks its list of negations per
    check, builds the emoji-free text a character at a time and works out the
    pos/neu/neg shares nobody here reads: about N^2 string work per text. Here
    each word is lower-cased once, a text without a lexicon word is 0.0 at once
    (every other word scores 0), only the lexicon's words are scored (the
    others score 0), and only the compound is computed. The rules
    themselves (and "but", the emoji table, the punctuation emphasis and the
    normalisation) are the library's own functions or read its own tables.
    """

    def __init__(self, analyzer: Any) -> None:
        from vaderSentiment import vaderSentiment as vader

        self.analyzer = analyzer
        self.lexicon: dict[str, float] = analyzer.lexicon
        self.emojis: dict[str, str] = analyzer.emojis
        # The library replaces emoji character by character: only one-character
        # entries can ever match.
        self.emoji_chars = frozenset(key for key in self.emojis if len(key) == 1)
        self.boosters: dict[str, float] = vader.BOOSTER_DICT
        self.special: dict[str, float] = vader.SPECIAL_CASES
        self.negations = frozenset(vader.NEGATE)
        self.cap_increase: float = vader.C_INCR
        self.negation_scalar: float = vader.N_SCALAR
        self.punctuation: str = vader.string.punctuation
        self.cap_differential = vader.allcap_differential
        self.but_check = vader.SentimentIntensityAnalyzer._but_check
        self.normalize = vader.normalize

    def compound(self, text: str) -> float:
        """`polarity_scores(text)["compound"]`."""
        if not text.isascii() and not self.emoji_chars.isdisjoint(text):
            text = self._describe_emojis(text)
        text = text.strip()
        # SentiText._strip_punc_if_word, inline: punctuation off both ends
        # unless that leaves two characters or fewer (an emoticon).
        punctuation = self.punctuation
        words = [
            stripped if len(stripped := token.strip(punctuation)) > 2 else token
            for token in text.split()
        ]
        lower = [word.lower() for word in words]
        lexicon = self.lexicon
        if lexicon.keys().isdisjoint(lower):
            return 0.0  # every word scores 0: sum 0, compound 0.0
        cap_differential = self.cap_differential(words)
        # A word not in the lexicon scores 0 (_valence's first two exits): only
        # the lexicon's words are scored, the others keep their 0.
        sentiments: list[float] = [0] * len(words)
        for i, word in enumerate(lower):
            if word in lexicon:
                sentiments[i] = self._valence(words, lower, i, cap_differential)
        if "but" in lower:
            sentiments = self.but_check(words, sentiments)
        total = float(sum(sentiments))
        emphasis = self.analyzer._punctuation_emphasis(text)
        if total > 0:
            total += emphasis
        elif total < 0:
            total -= emphasis
        compound: float = self.normalize(total)
        return round(compound, 4)

    def _describe_emojis(self, text: str) -> str:
        """The library's emoji pass: each emoji becomes its description."""
        emojis = self.emojis
        parts: list[str] = []
        after_space = True
        for char in text:
            if char in emojis:
                if not after_space:
                    parts.append(" ")
                parts.append(emojis[char])
                after_space = False
            else:
                parts.append(char)
                after_space = char == " "
        return "".join(parts)

    def _valence(
        self, words: list[str], lower: list[str], i: int, cap_differential: bool
    ) -> float:
        """The sentiment of word i: polarity_scores' loop body and
        sentiment_valence (0 for boosters, "kind of" and unknown words)."""
        word = lower[i]
        lexicon = self.lexicon
        last = len(words) - 1
        if word in self.boosters or (
            i < last and word == "kind" and lower[i + 1] == "of"
        ):
            return 0
        if word not in lexicon:
            return 0
        valence = lexicon[word]
        if word == "no" and i != last and lower[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and lower[i - 1] == "no")
            or (i > 1 and lower[i - 2] == "no")
            or (i > 2 and lower[i - 3] == "no" and lower[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[word] * self.negation_scalar
        if words[i].isupper() and cap_differential:
            if valence > 0:
                valence += self.cap_increase
            else:
                valence -= self.cap_increase
        for start in range(3):
            if i > start and lower[i - (start + 1)] not in lexicon:
                scalar = self._scalar(
                    words, lower, i - (start + 1), valence, cap_differential
                )
                if start == 1 and scalar != 0:
                    scalar = scalar * 0.95
                if start == 2 and scalar != 0:
                    scalar = scalar * 0.9
                valence = valence + scalar
                valence = self._negation(valence, lower, start, i)
                if start == 2:
                    valence = self._idioms(valence, lower, i)
        return self._least(valence, lower, i)

    def _scalar(
        self,
        words: list[str],
        lower: list[str],
        j: int,
        valence: float,
        cap_differential: bool,
    ) -> float:
        """The library's scalar_inc_dec for word j before a lexicon word."""
        scalar = 0.0
        if lower[j] in self.boosters:
            scalar = self.boosters[lower[j]]
            if valence < 0:
                scalar *= -1
            if words[j].isupper() and cap_differential:
                if valence > 0:
                    scalar += self.cap_increase
                else:
                    scalar -= self.cap_increase
        return scalar

    def _negated(self, word: str) -> bool:
        """The library's negated([word]) (which lower-cases it again)."""
        word = word.lower()
        return word in self.negations or "n't" in word

    def _negation(self, valence: float, lower: list[str], start: int, i: int) -> float:
        """The library's _negation_check."""
        if start == 0:
            if self._negated(lower[i - 1]):
                valence = valence * self.negation_scalar
        elif start == 1:
            if lower[i - 2] == "never" and lower[i - 1] in ("so", "this"):
                valence = valence * 1.25
            elif lower[i - 2] == "without" and lower[i - 1] == "doubt":
                pass
            elif self._negated(lower[i - 2]):
                valence = valence * self.negation_scalar
        elif (lower[i - 3] == "never" and lower[i - 2] in ("so", "this")) or lower[
            i - 1
        ] in ("so", "this"):
            valence = valence * 1.25
        elif lower[i - 3] == "without" and "doubt" in (lower[i - 2], lower[i - 1]):
            pass
        elif self._negated(lower[i - 3]):
            valence = valence * self.negation_scalar
        return valence

    def _idioms(self, valence: float, lower: list[str], i: int) -> float:
        """The library's _special_idioms_check (word i has three before it)."""
        special = self.special
        one_zero = f"{lower[i - 1]} {lower[i]}"
        two_one_zero = f"{lower[i - 2]} {lower[i - 1]} {lower[i]}"
        two_one = f"{lower[i - 2]} {lower[i - 1]}"
        three_two_one = f"{lower[i - 3]} {lower[i - 2]} {lower[i - 1]}"
        three_two = f"{lower[i - 3]} {lower[i - 2]}"
        for sequence in (one_zero, two_one_zero, two_one, three_two_one, three_two):
            if sequence in special:
                valence = special[sequence]
                break
        if len(lower) - 1 > i:
            zero_one = f"{lower[i]} {lower[i + 1]}"
            if zero_one in special:
                valence = special[zero_one]
        if len(lower) - 1 > i + 1:
            zero_one_two = f"{lower[i]} {lower[i + 1]} {lower[i + 2]}"
            if zero_one_two in special:
                valence = special[zero_one_two]
        for n_gram in (three_two_one, three_two, two_one):
            if n_gram in self.boosters:
                valence = valence + self.boosters[n_gram]
        return valence

    def _least(self, valence: float, lower: list[str], i: int) -> float:
        """The library's _least_check."""
        lexicon = self.lexicon
        if i > 1 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            if lower[i - 2] != "at" and lower[i - 2] != "very":
                valence = valence * self.negation_scalar
        elif i > 0 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            valence = valence * self.negation_scalar
        return valence


def warm() -> None:
    """Load the language model and every lexicon now (about 3 s) rather than on
    the first message a process reads."""
    read_message.__wrapped__("Warm the readers up, thank you.")
    for language in ("fr", "de"):
        _pattern(language)("")
