"""Top terms of a spike: the words the spike's messages use much more than the
brand's usual messages do. Pure functions.

Language-aware in a simple way: each message is given the language whose
stopwords it uses most (English, French, Spanish or German; English when none),
and that language's stopwords are dropped from it. A term's score is its count in
the spike times the log of how much more often it appears there than in the
baseline (smoothed, PRIOR_MESSAGES), so a word every message uses ("flight" for an
airline) ranks below the word that is new ("cancelled", "AA31").
"""

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence


def _stopwords(listing: str) -> frozenset[str]:
    return frozenset(listing.split())


STOPWORDS: dict[str, frozenset[str]] = {
    "en": _stopwords(
        """a about after again all am an and any are as at be been before being but
        by can could did do does doing don't down for from had has have having he
        her here hers him his how i i'm if in into is isn't it it's its just me
        more most my no nor not now of off on once only or other our out over own
        same she should so some still such than that the their them then there
        these they this those through to too under until up very was we were what
        when where which while who why will with won't would you your yours
        please thanks thank hi hello get got one also us im dont cant"""
    ),
    "fr": _stopwords(
        """au aux avec ce ces dans de des du elle en et eux il ils je la le les leur
        lui ma mais me même mes moi mon ne nos notre nous on ou par pas pour qu que
        qui sa se ses son sur ta te tes toi ton tu un une vos votre vous c d j l à
        m n s t y été est sont ai as avons avez ont suis es était cette cet merci
        bonjour plus très"""
    ),
    "es": _stopwords(
        """a al algo como con de del el ella ellos en entre era es esta este esto
        estoy ha han hay la las le les lo los me mi mis muy más no nos o para pero
        por que qué se sin sobre su sus también te tu un una uno y ya yo está
        gracias hola dónde donde"""
    ),
    "de": _stopwords(
        """aber alle als am an auch auf aus bei bin bis bist da das dass dein dem den
        der des die dir du ein eine einem einen einer es für hat hatte ich ihr im
        in ist ja kein mein mich mir mit nach nicht noch nur oder sich sie sind so
        um und uns von vor war was wie wir wo zu zum zur danke hallo bitte"""
    ),
}
_APOSTROPHE = "\u2019"
_WORD = re.compile(r"[#@]?[^\W_][\w'\u2019-]*", re.UNICODE)
_ELISION = re.compile(r"^(?:[cdjlmnst]|qu)'")
MAX_TERMS = 8
# Add-one smoothing over this many imagined baseline messages: a term unseen in
# the baseline counts as used by 1 in 100 (so a brand without stored texts still
# gets terms, and a term of 1 baseline message in 400 stays rare).
PRIOR_MESSAGES = 100
# A term stands out when the spike's messages use it at least twice as often.
MIN_LIFT = math.log(2)


def words(text: str) -> list[str]:
    """The lower-cased words of `text` (hashtags keep their #; links dropped)."""
    text = re.sub(r"https?://\S+", " ", text)
    text = text.lower().replace(_APOSTROPHE, "'")
    return [w.strip("'-") for w in _WORD.findall(text)]


def language(tokens: Sequence[str]) -> str:
    """The language whose stopwords `tokens` use most; English on a tie or none."""
    best, best_hits = "en", 0
    for code, stops in STOPWORDS.items():
        hits = sum(1 for t in tokens if t in stops)
        if hits > best_hits:
            best, best_hits = code, hits
    return best


def content_words(text: str) -> set[str]:
    """The distinct words of one message that are not stopwords of its language,
    handles or single characters (a message counts once per word)."""
    tokens = words(text)
    lang = language(tokens)
    if lang == "fr":  # elisions: l'avion, d'embarquement, qu'il
        tokens = [_ELISION.sub("", t) for t in tokens]
    stops = STOPWORDS[lang]
    return {
        t
        for t in tokens
        if len(t) > 1 and t not in stops and not t.startswith("@") and not t.isdigit()
    }


def _document_counts(texts: Iterable[str]) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    total = 0
    for text in texts:
        counts.update(content_words(text))
        total += 1
    return counts, total


def top_terms(
    spike: Iterable[str], baseline: Iterable[str], *, limit: int = MAX_TERMS
) -> list[tuple[str, int]]:
    """The terms of the spike's messages that stand out against the baseline's:
    `(term, messages in the spike using it)`, best first; a term needs two
    messages."""
    hits, n_spike = _document_counts(spike)
    usual, n_base = _document_counts(baseline)
    scored = []
    for term, count in hits.items():
        if count < 2:
            continue
        share = count / max(n_spike, 1)
        usual_share = (usual[term] + 1) / (n_base + PRIOR_MESSAGES)
        lift = math.log(share / usual_share)
        if lift < MIN_LIFT:
            continue
        scored.append((count * lift, count, term))
    scored.sort(key=lambda row: (-row[0], -row[1], row[2]))
    return [(term, count) for _, count, term in scored[:limit]]
