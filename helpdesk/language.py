"""Which language a customer wrote in (py3langid; its model ships in the wheel).

Candidates are held to the languages the product works in (LANGUAGES): a
closed set is faster and keeps short posts from landing on a language nobody
here reads. Text that is too short once handles, links, hashtags and numbers
are removed, or that the model cannot tell apart with confidence, gets ""
(unknown) rather than a guess.
"""

import itertools
import math
import re
import unicodedata
from collections import Counter
from functools import cache
from itertools import chain
from math import sumprod
from typing import Any

# ISO 639-1 codes and their names, in the order the UI lists them.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "fr": "French",
    "es": "Spanish",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
}
LANGUAGE_CHOICES: list[tuple[str, str]] = list(LANGUAGES.items())

# Below these, a post says too little to tell its language ("ok", "Merci !").
MIN_LETTERS = 10
MIN_WORDS = 2
# The model's probability, normalised over LANGUAGES, that a guess must reach.
MIN_PROBABILITY = 0.5

_NOISE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|[@#]\w+|\d+", re.UNICODE)
# _NOISE's alternatives, and _NOISE with any of the first four left out (see
# _noise): "\S+@\S+" is what makes _NOISE slow, as at every position of a
# word its \S+ runs to the word's end and back.
_NOISE_PARTS = (r"https?://\S+", r"www\.\S+", r"\S+@\S+", r"[@#]\w+", r"\d+")
_NOISES = {
    key: re.compile(
        "|".join(part for part, kept in zip(_NOISE_PARTS, key, strict=True) if kept),
        re.UNICODE,
    )
    for key in itertools.product((False, True), repeat=len(_NOISE_PARTS))
    if key[-1]
}
_INFIX_AT = re.compile(r"\S@\S", re.UNICODE)
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)
# The encoded text in pieces: a word with the space after it, or a lone space.
_PIECE = re.compile(rb"[^ ]+ ?| ")
# Pieces walked from a state, remembered per reader (cleared when it is full).
MEMO_SIZE = 50_000
# Features' weights as tuples, and answers by cleaned words, remembered (each
# cleared when full): about 5 MB and 1 MB at most.
ROWS_SIZE = 16_384
ANSWERS_SIZE = 4_096
_answers: dict[str, str] = {}


def detect_language(text: str) -> str:
    """The ISO 639-1 code of `text`'s language among LANGUAGES, or "" when unsure."""
    cleaned = _noise(text).sub(" ", text)
    words = _WORD.findall(cleaned)
    if len(words) < MIN_WORDS or sum(map(len, words)) < MIN_LETTERS:
        return ""
    # The answer is a function of the cleaned words alone: posts that differ
    # only in numbers, handles or links ("Order 17 ...", "Order 18 ...") are
    # read once.
    joined = " ".join(words)
    answer = _answers.get(joined)
    if answer is None:
        if len(_answers) >= ANSWERS_SIZE:
            _answers.clear()
        answer = _answers[joined] = _reader().detect(joined)
    return answer


def _noise(text: str) -> re.Pattern[str]:
    """_NOISE without the alternatives that cannot match in `text` as it lacks
    what they need ("://", "www.", an "@" between non-spaces, "@" or "#"). The
    matches are _NOISE's: an alternative that matches nowhere changes no match,
    as the others are tried in the same order at every position."""
    at = "@" in text
    return _NOISES[
        (
            "://" in text,
            "www." in text,
            # "\S+@\S+" needs an "@" between two non-spaces: a mention
            # ("@shop hello") cannot match it.
            at and _INFIX_AT.search(text) is not None,
            at or "#" in text,
            True,
        )
    ]


def language_name(code: str) -> str:
    """The English name of a code ("" for unknown; the code itself if not listed)."""
    return LANGUAGES.get(code, code)


@cache
def _identifier() -> Any:
    """The py3langid model, loaded once per process (about 0.9 s)."""
    from array import array

    import numpy as np
    from py3langid.langid import (
        MODEL_FILE,
        LanguageIdentifier,
    )

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    # Laid out for a cold cache (a request's other code evicts the model between
    # messages: 220 us per detection in a request against 37 us in a loop). The
    # restricted table is a column slice of a float16 matrix, so one feature's
    # seven weights lay 200 KB apart; as one float32 row each (the same values:
    # scoring casts them to float32 anyway) they are one cache line.
    identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)
    # The DFA walk reads, per byte of text, the state's row offset, the next
    # state and that state's feature: three misses in tables of 39 MB and
    # 2 x 0.8 MB. Each state's offset and feature now sit side by side (one
    # cache line) and the transitions name a state by its pair's index (2s):
    # the library's walk (nm[rowbase[s] + byte], then out[s]) reads them
    # unchanged through two views of the one array, and finds the same states.
    offsets, features = identifier._rowbase, identifier.tk_output
    pairs = array("q", bytes(16 * len(offsets)))
    pairs[0::2] = array("q", offsets)
    pairs[1::2] = array("q", features)
    transitions = np.frombuffer(identifier.tk_nextmove, dtype=np.uint32)
    transitions *= 2  # in place: the array keeps its 39 MB, no copy
    del transitions
    identifier._rowbase = pairs
    identifier.tk_output = memoryview(pairs)[1:]
    return identifier


class _Reader:
    """py3langid's classify over LANGUAGES, decided without numpy when rounding
    cannot change the answer (the same code, the same side of MIN_PROBABILITY).

    In a request the library's dozen numpy calls cost about 30 us each (their
    code is evicted between messages; 1-2 us in a loop): 250 us per detection,
    against 190 us here. The scores here are the library's in float64 (the
    features' log counts times their float32 weights, plus the prior, scaled).
    The library's float32 scores differ from them by at most gamma(n) times the
    sum of the terms' magnitudes (a dot product's rounding bound, whatever the
    order of summation; n counts the features and the few roundings around
    them). When neither the best language nor the probability's side of
    MIN_PROBABILITY can change within that bound (and a margin for the float32
    exp and sum), that is the library's answer; otherwise the library decides.
    """

    def __init__(self, identifier: Any) -> None:
        import numpy as np

        self.identifier = identifier
        self.classes: list[str] = list(identifier.nb_classes)
        self.width = len(self.classes)
        self.transitions = identifier.tk_nextmove
        self.pairs = identifier._rowbase
        self.memo: dict[tuple[int, bytes], tuple[int, tuple[int, ...]]] = {}
        # Feature f's weights are weights[f * width:(f + 1) * width]; rows
        # holds them as a tuple of floats for the features met lately.
        self.weights = memoryview(identifier.nb_ptc).cast("B").cast("f")
        self.rows: dict[int, tuple[float, ...]] = {}
        self.prior: list[float] = [float(value) for value in identifier.nb_pc]
        # The bound below reads the weights as log probabilities (<= 0).
        self.bounded = float(identifier.nb_ptc.max()) <= 0
        # log1p of a count, as float32 (what the library computes); a larger
        # count goes to the library.
        self.log_counts: list[float] = np.log1p(
            np.arange(256, dtype=np.float32)
        ).tolist()

    def detect(self, words: str) -> str:
        """The language of `words` (letters and spaces), or "" when unsure."""
        text = words.lower() if words.isupper() else words
        if not text.isascii():  # NFC leaves ASCII as it is
            text = unicodedata.normalize("NFC", text)
        data = text.encode("utf-8", errors="surrogatepass")
        answer = self._clear_answer(self._counts(data), len(data))
        if answer is None:
            code, probability = self.identifier.classify(words)
            answer = str(code) if probability >= MIN_PROBABILITY else ""
        return answer if answer in LANGUAGES else ""

    def _counts(self, data: bytes) -> dict[int, int]:
        """How often each feature occurs: the library's DFA walk, a piece (a
        word and its space) at a time. The walk is a function of the state and
        the bytes, so a piece walked once from a state is not walked again: its
        end state and the features it passes are remembered, and the features of
        the whole text are counted in C (Counter), in the order the byte walk
        meets them (the same dict, keys in the same order). Posts repeat the
        words of earlier posts: for the side-by-side's pushes (about 390 bytes
        once cleaned) a detection in a request went from 573 to 475 us."""
        memo = self.memo
        passed: list[tuple[int, ...]] = []
        state = 0
        for piece in _PIECE.findall(data):
            known = memo.get((state, piece))
            if known is None:
                if len(memo) >= MEMO_SIZE:
                    memo.clear()
                known = memo[(state, piece)] = self._walk(state, piece)
            state, features = known
            passed.append(features)
        return Counter(chain.from_iterable(passed))

    def _walk(self, state: int, data: bytes) -> tuple[int, tuple[int, ...]]:
        """The DFA walk over `data` from `state`: the state it ends in and the
        features it passes, in order."""
        transitions, pairs = self.transitions, self.pairs
        features: list[int] = []
        for byte in data:
            state = transitions[pairs[state] + byte]
            feature = pairs[state + 1]
            if feature >= 0:
                features.append(feature)
        return state, tuple(features)

    def _clear_answer(self, counts: dict[int, int], size: int) -> str | None:
        """The library's decision when rounding cannot change it, else None
        (also for fewer than two features or a count past the log1p table)."""
        log_counts = self.log_counts
        if not self.bounded or len(counts) < 2:
            return None
        try:
            weights = list(map(log_counts.__getitem__, counts.values()))
        except IndexError:  # a count past the table (counts are >= 1)
            return None
        # Each score: its language's weights (a column of the features' rows)
        # times the log counts, summed in C.
        rows = list(map(self.rows.get, counts))
        if None in rows:  # features not met lately
            rows = [
                known or self._row(f) for f, known in zip(counts, rows, strict=True)
            ]
        columns = zip(*rows, strict=True)
        sums = [sumprod(weights, column) for column in columns]
        # Every product is <= 0, so a score's terms' magnitudes sum to
        # |prior| - sum. Rounded: the features' products and sums, the prior's
        # addition, the log1p values, the scale and its product (8 is ample).
        terms = len(counts) + 8
        gamma = terms * 2.0**-24 / (1 - terms * 2.0**-24)
        scale = 1.0 / math.sqrt(size)
        scores = []
        bound = 0.0
        for s, p in zip(sums, self.prior, strict=True):
            scores.append((s + p) * scale)
            magnitude = abs(p) - s  # >= 0
            if magnitude > bound:
                bound = magnitude
        bound *= gamma * scale
        best = max(scores)
        top = scores.index(best)
        runner_up = sorted(scores)[-2]  # the best of the others
        if best - runner_up <= 2 * bound + 1e-4:
            return None
        probability = 1.0 / math.fsum(math.exp(score - best) for score in scores)
        if abs(probability - MIN_PROBABILITY) <= math.expm1(2 * bound) + 1e-4:
            return None
        return self.classes[top] if probability >= MIN_PROBABILITY else ""

    def _row(self, feature: int) -> tuple[float, ...]:
        """Feature's weights, one per language, remembered in rows."""
        if len(self.rows) >= ROWS_SIZE:
            self.rows.clear()
        start = feature * self.width
        row = self.rows[feature] = tuple(self.weights[start : start + self.width])
        return row


@cache
def _reader() -> _Reader:
    return _Reader(_identifier())
