"""helpdesk.language's model, laid out for a cold cache, answers exactly what
py3langid's own identifier answers (same code and probability, to the bit), and
its numpy-free reader decides exactly what the library decides."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from helpdesk import language
from helpdesk.language import (
    _NOISE,
    _WORD,
    LANGUAGES,
    MIN_LETTERS,
    MIN_PROBABILITY,
    MIN_WORDS,
    _identifier,
    _Reader,
    _reader,
    detect_language,
)

DATA = Path(__file__).parent / "data" / "care_messages.jsonl"
TEXTS = [
    json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()
] + [
    "[7] Order not arrived\n\nMy order 7 has not arrived yet. Could you check?",
    "ÇA NE MARCHE PAS DU TOUT, personne ne répond !!",
    "Grüße aus München, die Lieferung ist endlich da",
    "ok",
    "",
    "🙂🙂🙂",
]


def test_the_table_is_one_float32_row_per_feature() -> None:
    table = _identifier().nb_ptc
    assert table.dtype == np.float32
    assert table.flags["C_CONTIGUOUS"]
    assert table.shape[1] == len(LANGUAGES)


def test_it_answers_what_the_library_answers() -> None:
    library = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    library.set_languages(list(LANGUAGES))
    ours = _identifier()
    assert len(TEXTS) > 190
    for text in TEXTS:
        expected = library.classify(text)
        got = ours.classify(text)
        assert (got[0], got[1]) == (expected[0], expected[1]), text
    assert [detect_language(text) for text in TEXTS[-6:]] == [
        "en",
        "fr",
        "de",
        "",
        "",
        "",
    ]


def library_detect(library: LanguageIdentifier, text: str) -> str:
    """helpdesk.language.detect_language as it was: the library decides."""
    words = _WORD.findall(_NOISE.sub(" ", text))
    if len(words) < MIN_WORDS or sum(map(len, words)) < MIN_LETTERS:
        return ""
    code, probability = library.classify(" ".join(words))
    return str(code) if probability >= MIN_PROBABILITY else ""


def generated_texts(count: int) -> list[str]:
    """Word salads from the corpus (some shouted), the bench's push, and
    random letters with accents: thousands of posts near and far from a tie."""
    pool = [word for text in TEXTS for word in text.split()]
    rng = random.Random(20261206)
    texts = []
    for n in range(count):
        salad = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 30)))
        texts.append(salad.upper() if n % 5 == 0 else salad)
        texts.append(
            "".join(
                rng.choice("abcdefghijklmnopqrstuvwxyzäöüéèàçñß ÉÜ")
                for _ in range(rng.randint(5, 200))
            )
        )
        texts.append(f"[{n}] Order not arrived\n\nMy order {n} has not arrived yet.")
    return texts


def test_detection_answers_what_the_library_decides() -> None:
    library = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    library.set_languages(list(LANGUAGES))
    texts = TEXTS + generated_texts(1500)
    answers = [detect_language(text) for text in texts]
    assert answers == [library_detect(library, text) for text in texts]
    assert set(answers) == {"", *LANGUAGES}


def test_the_reader_decides_clear_cases_itself_and_defers_close_ones() -> None:
    reader = _reader()
    data = b"my order has not arrived yet could you check where it is"
    counts = reader._counts(data)
    assert reader._clear_answer(counts, len(data)) == "en"
    assert reader._clear_answer({}, 0) is None
    assert reader._clear_answer({next(iter(counts)): 1}, 1) is None
    assert reader._clear_answer({**counts, next(iter(counts)): 256}, len(data)) is None


def test_the_library_decides_when_the_reader_defers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    library.set_languages(list(LANGUAGES))
    texts = TEXTS[:60] + generated_texts(40)
    monkeypatch.setattr(_Reader, "_clear_answer", lambda *args: None)
    # Answers cached by earlier tests would skip the reader altogether.
    monkeypatch.setattr(language, "_answers", {})
    assert [detect_language(text) for text in texts] == [
        library_detect(library, text) for text in texts
    ]


def byte_walk(reader: _Reader, data: bytes) -> dict[int, int]:
    """The reader's feature counts as the library walks them, byte by byte."""
    counts: dict[int, int] = {}
    state = 0
    for byte in data:
        state = reader.transitions[reader.pairs[state] + byte]
        feature = reader.pairs[state + 1]
        if feature >= 0:
            counts[feature] = counts.get(feature, 0) + 1
    return counts


def test_counts_by_pieces_are_the_byte_walks_in_its_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = _reader()
    texts = [*TEXTS, *generated_texts(300)]
    odd = [" leading", "trailing ", "two  spaces", "   ", " ", "a b c d", "été à l'eau"]
    datas = [text.encode() for text in texts + odd]
    monkeypatch.setattr(reader, "memo", {})
    for data in datas:
        expected = byte_walk(reader, data)
        counts = reader._counts(data)
        assert counts == expected, data
        assert list(counts) == list(expected), data
        again = reader._counts(data)  # from the memo this time
        assert again == expected, data
        assert list(again) == list(expected), data
    assert reader.memo  # pieces were remembered
    # A full memo is emptied, and the answers stay the same.
    monkeypatch.setattr(language, "MEMO_SIZE", 5)
    monkeypatch.setattr(reader, "memo", {})
    for data in datas[:50]:
        assert reader._counts(data) == byte_walk(reader, data), data
        assert len(reader.memo) <= 5
