"""helpdesk.language's faster detection (the noise pattern chosen by the text's
literals, features' weights kept as rows, answers kept by cleaned words) gives
exactly what it gave before, and so read_message gives the same Reading.

The reference is the code as it was, copied here: detect_language with the one
noise pattern and the reader's decision gathering each language's weights from
the model's table, then read_message over it."""

import json
import math
import re
from collections.abc import Callable
from itertools import product
from math import sumprod
from operator import itemgetter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE, SentiText

from helpdesk import language, sentiment
from helpdesk.language import (
    _NOISE,
    _NOISE_PARTS,
    _NOISES,
    _WORD,
    LANGUAGES,
    MIN_LETTERS,
    MIN_PROBABILITY,
    MIN_WORDS,
    _noise,
    _Reader,
    _reader,
    detect_language,
)
from helpdesk.sentiment import ANGER_SCORE, NEUTRAL_BAND, Reading

DATA = Path(__file__).parent / "data" / "care_messages.jsonl"
CORPUS = [
    json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()
]
_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
_EXCLAIMED = re.compile(r"!\s*!|\?\s*!|!\s*\?")


# The reference: helpdesk.language and helpdesk.sentiment as they were.
def old_clear_answer(reader: _Reader, counts: dict[int, int], size: int) -> str | None:
    log_counts = reader.log_counts
    if not reader.bounded or len(counts) < 2:
        return None
    if max(counts.values()) >= len(log_counts):
        return None
    weights = list(map(log_counts.__getitem__, counts.values()))
    width = reader.width
    columns = [reader.weights[column:] for column in range(width)]
    rows = itemgetter(*[feature * width for feature in counts])
    sums = [sumprod(weights, rows(column)) for column in columns]
    terms = len(counts) + 8
    gamma = terms * 2.0**-24 / (1 - terms * 2.0**-24)
    scale = 1.0 / math.sqrt(size)
    scores = [(s + p) * scale for s, p in zip(sums, reader.prior, strict=True)]
    bound = max(abs(p) - s for s, p in zip(sums, reader.prior, strict=True))
    bound *= gamma * scale
    best = max(scores)
    top = scores.index(best)
    runner_up = max(score for i, score in enumerate(scores) if i != top)
    if best - runner_up <= 2 * bound + 1e-4:
        return None
    probability = 1.0 / math.fsum(math.exp(score - best) for score in scores)
    if abs(probability - MIN_PROBABILITY) <= math.expm1(2 * bound) + 1e-4:
        return None
    return reader.classes[top] if probability >= MIN_PROBABILITY else ""


def old_detect(reader: _Reader, words: str) -> str:
    import unicodedata

    text = words.lower() if words.isupper() else words
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    data = text.encode("utf-8", errors="surrogatepass")
    answer = old_clear_answer(reader, reader._counts(data), len(data))
    if answer is None:
        code, probability = reader.identifier.classify(words)
        answer = str(code) if probability >= MIN_PROBABILITY else ""
    return answer if answer in LANGUAGES else ""


def old_detect_language(text: str) -> str:
    cleaned = _NOISE.sub(" ", text)
    words = _WORD.findall(cleaned)
    if len(words) < MIN_WORDS or sum(map(len, words)) < MIN_LETTERS:
        return ""
    return old_detect(_reader(), " ".join(words))


def old_compound(text: str) -> float:
    reader = sentiment._reader()
    if not text.isascii() and not reader.emoji_chars.isdisjoint(text):
        text = reader._describe_emojis(text)
    text = text.strip()
    words = list(map(SentiText._strip_punc_if_word, text.split()))
    lower = [word.lower() for word in words]
    if reader.lexicon.keys().isdisjoint(lower):
        return 0.0
    cap_differential = reader.cap_differential(words)
    sentiments: list[float] = []
    for i in range(len(words)):
        sentiments.append(reader._valence(words, lower, i, cap_differential))
    if "but" in lower:
        sentiments = reader.but_check(words, sentiments)
    total = float(sum(sentiments))
    emphasis = reader.analyzer._punctuation_emphasis(text)
    if total > 0:
        total += emphasis
    elif total < 0:
        total -= emphasis
    compound: float = reader.normalize(total)
    return round(compound, 4)


def old_score(text: str, language: str) -> float:
    if language in ("en", ""):
        return old_compound(text)
    if language in ("fr", "de"):
        polarity = float(sentiment._pattern(language)(text)[0])
        if polarity:
            return max(-1.0, min(1.0, polarity))
    cues = old_compound(_LETTERS.sub(" ", text))
    if cues or language != "es":
        return cues
    found = _LETTERS.findall(text)
    words = [word.lower() for word in found]
    shouted = sum(1 for word in found if len(word) > 3 and word.isupper())
    negative = sum(word in sentiment.SPANISH_NEGATIVE for word in words)
    negative += (text.count("!") >= 3) + (shouted >= 2)
    net = sum(word in sentiment.SPANISH_POSITIVE for word in words) - negative
    return max(-1.0, min(1.0, net / 2))


def old_read_message(text: str) -> Reading:
    language = old_detect_language(text)
    score = round(old_score(text, language), 4)
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


# Texts: lexicon words, VADER's rule words, several languages' stopwords,
# emoji, emoticons, punctuation, numbers, handles, tags, links and addresses.
STOPWORDS = {
    "en": [
        "the",
        "and",
        "is",
        "it",
        "my",
        "order",
        "has",
        "not",
        "arrived",
        "yet",
        "could",
        "you",
        "check",
        "where",
    ],
    "fr": [
        "le",
        "la",
        "les",
        "et",
        "est",
        "pas",
        "du",
        "tout",
        "personne",
        "ne",
        "répond",
        "je",
        "suis",
        "très",
        "déçu",
    ],
    "de": [
        "die",
        "der",
        "das",
        "und",
        "ist",
        "nicht",
        "ich",
        "bin",
        "sehr",
        "enttäuscht",
        "keine",
        "Lieferung",
    ],
    "es": [
        "el",
        "la",
        "los",
        "y",
        "es",
        "no",
        "muy",
        "peor",
        "pésimo",
        "retraso",
        "gracias",
        "pedido",
        "todavía",
    ],
    "it": [
        "il",
        "lo",
        "gli",
        "e",
        "è",
        "non",
        "sono",
        "molto",
        "ordine",
        "ancora",
        "arrivato",
        "grazie",
    ],
    "pt": [
        "o",
        "os",
        "e",
        "é",
        "não",
        "muito",
        "pedido",
        "ainda",
        "chegou",
        "obrigado",
        "você",
    ],
    "nl": [
        "de",
        "het",
        "een",
        "en",
        "is",
        "niet",
        "mijn",
        "bestelling",
        "nog",
        "steeds",
        "bedankt",
    ],
}
LEXICON = sorted(sentiment._vader().lexicon)[::25]
RULES = [*NEGATE, *list(BOOSTER_DICT)[::3], "but", "kind", "of", "least", "never"]
CORPUS_WORDS = [word for text in CORPUS for word in text.split()]
NOISE = [
    "17",
    "#1",
    "@brand",
    "@Brand_Help",
    "#fail",
    "me@example.com",
    "a@b",
    "@@x",
    "x@",
    "https://example.com/a?b=1",
    "http://x.y",
    "www.example.org",
    "WWW.shout.com",
    "://",
    "order#42",
    "\uff12\uff13",  # fullwidth digits
    "١٢",
]
MARKS = ["!", "!!", "?!", "!?", "...", ",", ".", ":)", ":(", ";-)", "😀", "😡", "👍"]
SPACES = [" ", " ", " ", "  ", "\n", "\n\n", "\t", ""]

tokens = st.one_of(
    st.sampled_from(CORPUS_WORDS),
    st.sampled_from(LEXICON),
    st.sampled_from(RULES),
    st.sampled_from(sorted(STOPWORDS)).flatmap(
        lambda code: st.sampled_from(STOPWORDS[code])
    ),
    st.sampled_from(NOISE),
    st.sampled_from(MARKS),
    st.text(alphabet="abcdeéèàçñßäöü@#:/.w0123456789", min_size=1, max_size=12),
)
CASES: dict[str, Callable[[str], str]] = {
    "": str,
    "upper": str.upper,
    "title": str.title,
    "lower": str.lower,
}
token = st.tuples(
    tokens,
    st.sampled_from(["", "", "", "upper", "title", "lower"]),
    st.sampled_from(["", "", "", *MARKS]),
).map(lambda drawn: CASES[drawn[1]](drawn[0]) + drawn[2])
posts = st.tuples(
    st.lists(token, min_size=0, max_size=40), st.lists(st.sampled_from(SPACES))
).map(
    lambda drawn: "".join(
        word + (drawn[1][i % len(drawn[1])] if drawn[1] else " ")
        for i, word in enumerate(drawn[0])
    )
)


@pytest.fixture(autouse=True)
def _fresh_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no remembered answers (and leaves none behind)."""
    monkeypatch.setattr(language, "_answers", {})


def test_the_noise_patterns_are_the_one_pattern_less_what_cannot_match() -> None:
    assert _NOISES[(True,) * len(_NOISE_PARTS)].pattern == _NOISE.pattern
    assert len(_NOISES) == 16
    assert _noise("Order 17 has not arrived").pattern == r"\d+"
    assert _noise("ask @brand #help").pattern == r"[@#]\w+|\d+"
    assert _noise("ask@brand #help").pattern == r"\S+@\S+|[@#]\w+|\d+"
    assert _noise("@@x").pattern == r"\S+@\S+|[@#]\w+|\d+"
    assert _noise("x@ @y a\u00a0@\u00a0b").pattern == r"[@#]\w+|\d+"
    assert _noise("see www.x.org").pattern == r"www\.\S+|\d+"
    assert _noise("see https://x.org/#a").pattern == r"https?://\S+|[@#]\w+|\d+"
    samples = [*CORPUS, *NOISE, " ".join(NOISE), "a@b c#d www.e f://g 12"]
    samples += [
        "x@ @y",
        "@x@y",
        "a\u00a0@\u00a0b",
        "a\u2003@b",
        "mail me@x.io",
        "@ @ @",
    ]
    for text in samples:
        assert _noise(text).sub(" ", text) == _NOISE.sub(" ", text), text
        for pattern in _NOISES.values():
            # Any pattern that keeps every alternative able to match in `text`
            # cleans it as _NOISE does.
            needed = _noise(text).pattern.split("|")
            if all(part in pattern.pattern.split("|") for part in needed):
                assert pattern.sub(" ", text) == _NOISE.sub(" ", text), text


def test_the_corpus_reads_as_before() -> None:
    texts = [*CORPUS, *(text.upper() for text in CORPUS), *NOISE, "", "ok"]
    expected = [old_read_message(text) for text in texts]
    assert [sentiment.read_message.__wrapped__(text) for text in texts] == expected
    # Again, now from the remembered answers.
    assert [sentiment.read_message.__wrapped__(text) for text in texts] == expected
    assert {reading.language for reading in expected} == {"", "en", "fr", "de", "es"}


def test_rows_are_the_models_weights() -> None:
    reader = _reader()
    width = reader.width
    for feature in (0, 1, 7, 1234, len(reader.weights) // width - 1):
        row = reader._row(feature)
        assert row == tuple(
            float(value) for value in reader.identifier.nb_ptc[feature].tolist()
        )
        assert reader.rows[feature] is row
    assert width == len(LANGUAGES)


def test_full_caches_are_emptied_and_answers_stay_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = _reader()
    monkeypatch.setattr(reader, "rows", {})
    monkeypatch.setattr(language, "ROWS_SIZE", 50)
    monkeypatch.setattr(language, "ANSWERS_SIZE", 3)
    texts = CORPUS[:40]
    assert [detect_language(text) for text in texts] == [
        old_detect_language(text) for text in texts
    ]
    assert 0 < len(reader.rows) <= 50
    assert 0 < len(language._answers) <= 3


def test_posts_that_differ_in_numbers_handles_and_links_are_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    detect = _Reader.detect

    def counting(reader: _Reader, words: str) -> str:
        calls.append(words)
        return detect(reader, words)

    monkeypatch.setattr(_Reader, "detect", counting)
    texts = [
        f"Order {n} has not arrived yet, can you check? @shop{n} https://x.io/{n}"
        for n in range(5)
    ]
    assert [detect_language(text) for text in texts] == ["en"] * 5
    assert calls == ["Order has not arrived yet can you check"]


def test_close_cases_still_go_to_the_library() -> None:
    reader = _reader()
    data = b"my order has not arrived yet could you check where it is"
    counts = reader._counts(data)
    assert reader._clear_answer(counts, len(data)) == "en"
    assert reader._clear_answer({}, 0) is None
    assert reader._clear_answer({next(iter(counts)): 1}, 1) is None
    assert reader._clear_answer({**counts, next(iter(counts)): 256}, len(data)) is None
    for count in (254, 255, 256, 1000):
        more = {**counts, next(iter(counts)): count}
        assert reader._clear_answer(more, count) == old_clear_answer(
            reader, more, count
        )
    # Word salads of every language's stopwords: the decision (or the deferral)
    # is the old one for each.
    for codes in product(sorted(STOPWORDS), repeat=2):
        words = " ".join(STOPWORDS[codes[0]][:6] + STOPWORDS[codes[1]][6:])
        data = words.encode()
        counts = reader._counts(data)
        assert reader._clear_answer(counts, len(data)) == old_clear_answer(
            reader, counts, len(data)
        ), words


def test_compound_scores_as_before() -> None:
    reader = sentiment._reader()
    texts = [*CORPUS, *(text.upper() for text in CORPUS), *NOISE, *MARKS, "", " "]
    texts += [" ".join(LEXICON[i : i + 9]) for i in range(0, len(LEXICON), 9)]
    texts += [f"{rule} {word}!" for rule in RULES for word in LEXICON[:: len(RULES)]]
    got = [repr(reader.compound(text)) for text in texts]
    assert got == [repr(old_compound(text)) for text in texts]
    assert sum(score.startswith("-") for score in got) > 100
    assert (
        sum(score not in ("0.0", "-0.0") and not score.startswith("-") for score in got)
        > 100
    )


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=posts)
def test_random_posts_read_as_before(text: str) -> None:
    expected = old_read_message(text)
    assert sentiment.read_message.__wrapped__(text) == expected
    assert sentiment.read_message.__wrapped__(text) == expected  # remembered
    assert repr(sentiment._compound(text)) == repr(old_compound(text))
    assert detect_language(text) == expected.language


def test_with_no_clear_answer_the_library_decides_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = [*CORPUS[::3], *NOISE, "ok"]
    expected = [old_detect_language(text) for text in texts]
    monkeypatch.setattr(_Reader, "_clear_answer", lambda *args: None)
    assert [detect_language(text) for text in texts] == expected
    assert set(expected) == {"", "en", "fr", "de", "es"}
