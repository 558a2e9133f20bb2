"""Which language a customer wrote in (py3langid; its model ships in the wheel).

Candidates are held to the languages the product works in (LANGUAGES): a
closed set is faster and keeps short posts from landing on a language nobody
here reads. Text that is too short once handles, links, hashtags and numbers
are removed, or that the model cannot tell apart with confidence, gets ""
(unknown) rather than a guess.
"""

import re
from functools import cache
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
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


def detect_language(text: str) -> str:
    """The ISO 639-1 code of `text`'s language among LANGUAGES, or "" when unsure."""
    cleaned = _NOISE.sub(" ", text)
    words = _WORD.findall(cleaned)
    if len(words) < MIN_WORDS or sum(map(len, words)) < MIN_LETTERS:
        return ""
    code, probability = _identifier().classify(" ".join(words))
    if probability < MIN_PROBABILITY or code not in LANGUAGES:
        return ""
    return str(code)


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
    # scoring casts them to float32 anyway) they are one cache line. The DFA's
    # row offsets and outputs are lists of int objects, a pointer and an object
    # per byte of text; as arrays they are read in place. Same numbers, same
    # answers.
    identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)
    identifier._rowbase = array("q", identifier._rowbase)
    identifier.tk_output = array("q", identifier.tk_output)
    return identifier
