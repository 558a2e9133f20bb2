"""Keyword-search terms derived from listening rules (social/listening/terms.py).

Pure functions: no database. What the connectors make of the terms is in
test_keyword_search.py.
"""

import logging

import pytest

from social.connectors.base import search_tokens
from social.listening import QuerySyntaxError, Rule
from social.listening.terms import rule_terms, search_terms

ACME = {"acme air": ["akme air", "acmeair"]}


def test_terms_phrases_tags_and_handles_are_searched_as_written() -> None:
    assert rule_terms('acme "Acme Air" #AcmeAir @Acme_Help', "x") == [
        'acme "acme air" #acmeair @acme_help'
    ]
    assert rule_terms('acme OR "Acme Air" OR #AcmeAir OR @Acme_Help', "x") == [
        "acme",
        '"acme air"',
        "#acmeair",
        "@acme_help",
    ]


def test_words_are_folded_like_the_matcher_folds_them() -> None:
    assert rule_terms('"Rétard ÉNORME" OR Café', "x") == ['"retard enorme"', "cafe"]


def test_each_variant_spelling_is_its_own_term() -> None:
    assert rule_terms('"acme air" OR acme-air', "x", ACME) == [
        '"acme air"',
        '"akme air"',
        "acmeair",
    ]


def test_exclusions_and_not_are_never_searched() -> None:
    assert rule_terms('acme -hiring -"job offer" NOT (@rival OR #ad)', "x") == ["acme"]
    assert rule_terms("(acme OR acmeair) -(refund NOT delay)", "x") == [
        "acme",
        "acmeair",
    ]


def test_field_filters_add_nothing() -> None:
    assert rule_terms("acme lang:en author:@pat", "x") == ["acme"]
    assert rule_terms("acme -author:acmeair -lang:de", "x") == ["acme"]


def test_a_platform_filter_for_another_platform_removes_its_branch() -> None:
    query = "(acme platform:reddit) OR (acmeair platform:x) OR #acme"
    assert rule_terms(query, "x") == ["acmeair", "#acme"]
    assert rule_terms(query, "reddit") == ["acme", "#acme"]
    assert rule_terms("acme platform:reddit", "x") == []
    assert rule_terms("acme -platform:reddit", "x") == ["acme"]


def test_and_combines_the_operands_terms() -> None:
    assert rule_terms('(acme OR "acme air") (refund OR delay) -spam', "x") == [
        "acme refund",
        "acme delay",
        '"acme air" refund',
        '"acme air" delay',
    ]


def test_too_many_combinations_fall_back_to_the_smallest_operand() -> None:
    query = "(a1 OR a2 OR a3 OR a4 OR a5) (b1 OR b2 OR b3 OR b4)"
    assert rule_terms(query, "x") == ["b1", "b2", "b3", "b4"]
    assert rule_terms("(a1 OR a2 OR a3 OR a4) (b1 OR b2 OR b3 OR b4)", "x") == [
        f"a{a} b{b}" for a in range(1, 5) for b in range(1, 5)
    ]


def test_proximity_words_are_a_group_without_quotes() -> None:
    assert rule_terms('"late flight"~5', "x") == ["late flight"]
    assert rule_terms('"acme air late"~3', "x", ACME) == [
        "acme air late",
        "akme air late",
        "acmeair late",
    ]
    assert rule_terms('late NEAR/3 (flight OR "the plane")', "x") == [
        "late flight",
        'late "the plane"',
    ]


def test_a_prefix_is_its_stem_only_where_nothing_exact_stands_beside_it() -> None:
    assert rule_terms("refund*", "x") == ["refund"]
    assert rule_terms("acme refund*", "x") == ["acme"]
    assert rule_terms("acme NEAR/2 refund*", "x") == ["acme"]
    assert rule_terms("refund* cancel*", "x") == ["refund cancel"]
    assert rule_terms("refund* OR acme", "x") == ["refund", "acme"]


def test_terms_implied_by_another_are_dropped() -> None:
    assert rule_terms("(acme refund) OR acme OR (refund acme)", "x") == ["acme"]


def test_a_query_that_does_not_parse_raises() -> None:
    with pytest.raises(QuerySyntaxError):
        rule_terms("NOT spam", "x")


def test_only_inbox_rules_for_the_platform_give_terms_in_rule_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules = [
        Rule(1, 7, '"acme air" OR acmeair', variants=ACME),
        Rule(2, 7, "airline NEAR/2 strike", action="feed"),
        Rule(3, 7, "suitcase", platforms=frozenset({"reddit"})),
        Rule(4, 7, "NOT spam"),  # saved without validation: needs no words
        Rule(5, 7, "acmeair refund OR #acme", platforms=frozenset({"x", "reddit"})),
    ]
    with caplog.at_level(logging.WARNING, logger="social.listening.terms"):
        assert search_terms(rules, "x") == [
            '"acme air"',
            '"akme air"',
            "acmeair",
            "#acme",
        ]
    assert [r.getMessage() for r in caplog.records] == [
        "listening rule 4 has no search terms: too broad: this part can match posts "
        "without any term, phrase, #tag or @handle (NOT, exclusions and field "
        "filters only narrow a search); add a term every match must contain "
        "(at character 0)"
    ]
    assert search_terms(rules, "reddit") == [
        '"acme air"',
        '"akme air"',
        "acmeair",
        "suitcase",
        "#acme",
    ]
    assert search_terms(rules[1:2], "x") == []


def test_search_tokens_split_a_term_keeping_phrases_whole() -> None:
    assert search_tokens('"acme air" refund #acme @acme.bsky.social') == [
        '"acme air"',
        "refund",
        "#acme",
        "@acme.bsky.social",
    ]
    assert search_tokens("late flight") == ["late", "flight"]
