"""helpdesk.language's model, laid out for a cold cache, answers exactly what
py3langid's own identifier answers (same code and probability, to the bit)."""

import json
from pathlib import Path

import numpy as np
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from helpdesk.language import LANGUAGES, _identifier, detect_language

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
