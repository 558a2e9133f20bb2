"""FROZEN COPY of helpdesk/sentiment.py before issue 14 (commit 0cabc31), kept as
the baseline of tests/helpdesk/test_sentiment_accuracy.py; do not improve it.

A small lexicon scorer for the first triage of sentiment (negative first: R10).

It is deliberately simple and explainable; it only orders the queue within the
bounded window and labels conversations, it never decides whether to answer.
"""

import re

NEGATIVE = frozenset(
    """
    angry awful bad broken cancel cancelled canceled complaint delayed delay disgusted
    disappointed disgrace fail failed furious horrible hate lost never refund rude scam
    stuck terrible unacceptable useless waiting worst wrong ridiculous
    nul pire retard remboursement inacceptable schlecht verspätung enttäuscht
    peor pésimo retraso
    """.split()  # noqa: SIM905 - a word list reads best as text
)
POSITIVE = frozenset(
    """
    amazing awesome best brilliant excellent fantastic great happy helpful love lovely
    perfect thanks thank wonderful merci génial super danke gracias
    """.split()  # noqa: SIM905 - a word list reads best as text
)
WORD = re.compile(r"[\wÀ-ÿ']+")


def score_sentiment(text: str) -> str:
    """'negative', 'positive' or 'neutral' for one message."""
    words = [word.lower() for word in WORD.findall(text)]
    negative = sum(word in NEGATIVE for word in words)
    positive = sum(word in POSITIVE for word in words)
    shouting = sum(1 for word in WORD.findall(text) if len(word) > 3 and word.isupper())
    negative += (text.count("!") >= 3) + (shouting >= 2)
    if negative > positive:
        return "negative"
    if positive > negative:
        return "positive"
    return "neutral"
