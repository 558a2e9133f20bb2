"""helpdesk.sentiment's VADER reader gives exactly the library's compound score
(vaderSentiment's polarity_scores, to the bit) on the care corpus and on many
generated texts that exercise every rule: negations, boosters, capitals, "but",
"kind of", "no", "least", idioms, emoji, emoticons and punctuation."""

import json
import random
from pathlib import Path

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
)

from helpdesk import sentiment

DATA = Path(__file__).parent / "data" / "care_messages.jsonl"
CORPUS = [
    json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()
]
LIBRARY = SentimentIntensityAnalyzer()
# Words around which VADER has rules of its own.
RULE_WORDS = [
    *NEGATE,
    *BOOSTER_DICT,
    *" ".join(SPECIAL_CASES).split(),
    *("but", "BUT", "kind", "of", "no", "No", "or", "nor", "least", "at", "very"),
    *("never", "so", "this", "without", "doubt", "isn't", "n't", "Not", "NEVER"),
]
# Idioms and two-word boosters, whole ("kiss of death", "sort of").
PHRASES = [*SPECIAL_CASES, *(phrase for phrase in BOOSTER_DICT if " " in phrase)]
DECORATION = ["!", "!!", "!!!!!", "?", "??", "????", ",", ".", ":)", ":(", ";-)"]
EMOJI = ["😀", "😡", "💔", "👍", "🙂", "😭", "❤", "✨"]


def generated_texts(count: int) -> list[str]:
    """Word salads of corpus words, rule words, idioms, lexicon words (some
    shouted, some with punctuation glued on) and emoji, 1-40 tokens each."""
    rng = random.Random(20261206)
    corpus_words = [word for text in CORPUS for word in text.split()]
    lexicon = sorted(LIBRARY.lexicon)
    texts = []
    for n in range(count):
        tokens = []
        for _ in range(rng.randint(1, 40)):
            pick = rng.random()
            if pick < 0.04:
                word = rng.choice(PHRASES)
            elif pick < 0.3:
                word = rng.choice(corpus_words)
            elif pick < 0.55:
                word = rng.choice(RULE_WORDS)
            elif pick < 0.8:
                word = rng.choice(lexicon)
            elif pick < 0.9:
                word = rng.choice(EMOJI) * rng.randint(1, 2)
            else:
                word = rng.choice(DECORATION)
            if rng.random() < 0.15:
                word = word.upper()
            if rng.random() < 0.15:
                word += rng.choice(DECORATION)
            tokens.append(word)
        joiner = rng.choice([" ", " ", "  ", "\n", ""]) if n % 7 == 0 else " "
        texts.append(joiner.join(tokens))
    return texts


def library_compound(text: str) -> float:
    return float(LIBRARY.polarity_scores(text)["compound"])


def test_the_compound_score_is_the_librarys_on_the_corpus() -> None:
    reader = sentiment._reader()
    texts = [*CORPUS, *(sentiment._LETTERS.sub(" ", text) for text in CORPUS)]
    got = [repr(reader.compound(text)) for text in texts]
    assert got == [repr(library_compound(text)) for text in texts]
    assert sum(score != "0.0" for score in got) > 60


def test_the_compound_score_is_the_librarys_on_generated_texts() -> None:
    reader = sentiment._reader()
    texts = generated_texts(20_000)
    texts += [
        "",
        "   ",
        "😀",
        "ok 😀!",
        "not bad at all",
        "At least it isn't a horrible book.",
        "The book was only kind of good.",
        "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
        "Today only kinda sux! But I'll get by, lol",
        "Roger Dodger is one of the least compelling variations on this theme.",
        "With VADER, sentiment analysis is the shit!",
        "Without a doubt, an excellent idea.",
        "no no no good or bad",
        "[7] Order not arrived\n\nMy order 7 has not arrived yet. Could you check?",
    ]
    got = [repr(reader.compound(text)) for text in texts]
    expected = [repr(library_compound(text)) for text in texts]
    mismatches = [
        (text, mine, theirs)
        for text, mine, theirs in zip(texts, got, expected, strict=True)
        if mine != theirs
    ]
    assert mismatches == []
    # The texts reach every kind of answer and the rules' rarer branches.
    assert len(set(got)) > 5000
    assert sum(score.startswith("-") for score in got) > 5000
    assert sum(score == "0.0" for score in got) > 500
    assert sum(" but " in text.lower() for text in texts) > 800
    assert sum(any(emoji in text for emoji in EMOJI) for text in texts) > 10000


def test_read_message_scores_through_the_reader() -> None:
    text = "This is AWFUL, the worst service ever, I hate it!!"
    sentiment.read_message.cache_clear()
    reading = sentiment.read_message(text)
    assert reading.score == round(library_compound(text), 4) < -0.6
    assert (reading.language, reading.label, reading.angry) == (
        "en",
        "negative",
        True,
    )
