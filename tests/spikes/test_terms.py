"""Top terms: what the spike's messages say that the usual ones do not, with
each message's own language's stopwords left out."""

from spikes.terms import content_words, language, top_terms

USUAL = [
    "My flight to Paris is delayed, any news?",
    "Thanks for the help with my flight booking",
    "Where is my bag? Flight from Rome",
    "Can I change my flight date please",
] * 10
SPIKE = [
    "Flight AA31 cancelled, nobody at the gate",
    "AA31 cancelled?! Stuck at the gate",
    "Is my flight AA31 really cancelled",
    "Vol AA31 annulé, personne à la porte d'embarquement",
    "Mein Flug AA31 ist annulliert, was nun?",
    "¿AA31 cancelado? Estoy en la puerta",
]


def test_the_new_words_rank_above_the_usual_ones() -> None:
    assert top_terms(SPIKE, USUAL) == [("aa31", 6), ("cancelled", 3), ("gate", 2)]


def test_without_baseline_texts_the_frequent_words_lead() -> None:
    assert top_terms(SPIKE, [])[:3] == [("aa31", 6), ("cancelled", 3), ("flight", 2)]


def test_each_message_drops_its_own_languages_stopwords() -> None:
    assert language(["vol", "annulé", "à", "la", "porte"]) == "fr"
    assert language(["mein", "flug", "ist", "annulliert"]) == "de"
    assert language(["estoy", "en", "la", "puerta"]) == "es"
    assert language(["AA31"]) == "en"
    assert content_words("Vol AA31 annulé, personne à la porte d'embarquement") == {
        "vol",
        "aa31",
        "annulé",
        "personne",
        "porte",
        "embarquement",
    }
    assert content_words("Mein Flug ist annulliert, was nun?") == {
        "flug",
        "annulliert",
        "nun",
    }
    assert content_words("@acmeair the app won't load, see https://x.co/1 #fail") == {
        "app",
        "load",
        "see",
        "#fail",
    }


def test_a_word_of_one_message_is_not_a_term() -> None:
    assert top_terms(["strike today", "delay today"], []) == [("today", 2)]
