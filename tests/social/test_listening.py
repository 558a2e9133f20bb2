"""The listening query language and its compiled matcher (social/listening/).

Pure functions: no database. The property tests at the end compare the compiled
matcher with a naive evaluator written here, over random rule sets and posts.
"""

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from social.listening import (
    And,
    Field,
    Handle,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Post,
    Prefix,
    Proximity,
    QuerySyntaxError,
    Rule,
    RuleError,
    RuleMatch,
    Tag,
    compile_rules,
    fold,
    parse_query,
)

ACME = {"acme air": ["acmeair", "acme-air", "akme air"]}


def term(word: str, position: int) -> Phrase:
    return Phrase(((word,),), position)


def matches(
    query: str,
    text: str,
    *,
    variants: Mapping[str, Sequence[str]] | None = None,
    author: str = "someone",
    language: str = "en",
    platform: str = "x",
) -> bool:
    matcher = compile_rules([Rule(1, 1, query, variants=variants or {})])
    post = Post(text, author_handle=author, language=language, platform=platform)
    found = matcher.match(post)
    assert found in ([], [RuleMatch(1, 1, "inbox")])
    return found != []


# Parsing


def test_adjacent_terms_are_an_implicit_and() -> None:
    assert parse_query("late flight") == And((term("late", 0), term("flight", 5)), 0)


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    assert parse_query("a OR b AND NOT c") == Or(
        (term("a", 0), And((term("b", 5), Not(term("c", 15), 11)), 5)), 0
    )


def test_parentheses_group_and_nested_operators_flatten() -> None:
    assert parse_query("(a OR b) (c AND d AND e)") == And(
        (
            Or((term("a", 1), term("b", 6)), 1),
            term("c", 10),
            term("d", 16),
            term("e", 22),
        ),
        1,
    )


def test_operators_are_upper_case_and_lower_case_ones_are_words() -> None:
    assert parse_query("rock and roll") == And(
        (term("rock", 0), term("and", 5), term("roll", 9)), 0
    )


def test_minus_excludes_terms_phrases_and_groups() -> None:
    assert parse_query('acme -job -"press release" -(spam OR ad)') == And(
        (
            term("acme", 0),
            Not(term("job", 6), 5),
            Not(Phrase((("press", "release"),), 11), 10),
            Not(Or((term("spam", 29), term("ad", 37)), 29), 27),
        ),
        0,
    )


def test_a_hyphen_inside_a_term_makes_a_phrase() -> None:
    assert parse_query("acme-air") == Phrase((("acme", "air"),), 0)


def test_tags_handles_prefixes_and_fields_parse() -> None:
    assert parse_query("#AcmeAir @Acme_Help refund* author:@Bob lang:EN_gb") == And(
        (
            Tag("acmeair", 0),
            Handle("acme_help", 9),
            Prefix("refund", 20),
            Field("author", "bob", 28),
            Field("lang", "en-gb", 40),
        ),
        0,
    )


def test_platform_field_and_dotted_handles_parse() -> None:
    assert parse_query("@acme-air.bsky.social platform:Bluesky") == And(
        (Handle("acme-air.bsky.social", 0), Field("platform", "bluesky", 22)), 0
    )


def test_proximity_phrase_and_near_parse() -> None:
    assert parse_query('"late flight"~5 OR delay NEAR/3 (refund OR money)') == Or(
        (
            Proximity((("late", "flight"),), 5, 0),
            Near(
                term("delay", 19),
                Or((term("refund", 33), term("money", 43)), 33),
                3,
                19,
            ),
        ),
        0,
    )


def test_near_chains_to_the_left() -> None:
    assert parse_query("a NEAR/1 b NEAR/2 c") == Near(
        Near(term("a", 0), term("b", 9), 1, 0), term("c", 18), 2, 0
    )


def test_a_one_word_proximity_phrase_is_a_term() -> None:
    assert parse_query('"refund"~4') == term("refund", 0)


def test_variants_expand_terms_and_phrases() -> None:
    spellings = (("acme", "air"), ("acmeair",), ("akme", "air"))
    assert parse_query('"Acme Air" OR acme-air', ACME) == Or(
        (Phrase(spellings, 0), Phrase(spellings, 14)), 0
    )


def test_variants_expand_proximity_phrases() -> None:
    assert parse_query('"acme air"~2', ACME) == Proximity(
        (("acme", "air"), ("acmeair",), ("akme", "air")), 2, 0
    )


def test_variants_expand_inside_a_longer_phrase() -> None:
    variants = {"acme": ["akme"], "refund": ["refnd", "re fund"]}
    assert parse_query('"acme refund now"', variants) == Phrase(
        (
            ("acme", "refund", "now"),
            ("acme", "refnd", "now"),
            ("acme", "re", "fund", "now"),
            ("akme", "refund", "now"),
            ("akme", "refnd", "now"),
            ("akme", "re", "fund", "now"),
        ),
        0,
    )


def test_variants_leave_adjacent_terms_tags_and_wildcards_alone() -> None:
    assert parse_query("acme air #acmeair acme*", ACME) == And(
        (term("acme", 0), term("air", 5), Tag("acmeair", 9), Prefix("acme", 18)), 0
    )


def test_variants_that_expand_too_far_are_refused() -> None:
    variants = {word: [f"{word}1", f"{word}2", f"{word}3"] for word in "abcd"}
    with pytest.raises(QuerySyntaxError) as error:
        parse_query('x "a b c d"', variants)
    assert error.value.position == 2
    assert error.value.message == "the variants expand this to more than 64 spellings"


def test_variants_without_words_are_refused() -> None:
    with pytest.raises(RuleError) as error:
        parse_query("acme", {"acme": ["!!"]})
    assert error.value.message == "the variant '!!' of 'acme' has no words"
    with pytest.raises(RuleError) as error:
        parse_query("acme", {"?": ["akme"]})
    assert error.value.message == "the variant entry '?' has no words"


def test_variants_must_be_lists_of_spellings() -> None:
    with pytest.raises(RuleError) as error:
        parse_query("acme", {"acme": "akme"})
    assert error.value.message == "the variants of 'acme' must be a list of spellings"


OPERAND = "expected a term, \"phrase\", #tag, @handle, field filter or '('"
TOO_BROAD = (
    "too broad: this part can match posts without any term, phrase, #tag or "
    "@handle (NOT, exclusions and field filters only narrow a search); add a term "
    "every match must contain"
)


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("", 0, f"{OPERAND}, found end of query"),
        (
            "(late OR delay",
            14,
            "expected ')' to close the '(' at character 0, found end of query",
        ),
        (
            "((a) OR b",
            9,
            "expected ')' to close the '(' at character 0, found end of query",
        ),
        ("late OR delay)", 13, "unexpected ')' without a matching '('"),
        ("late OR", 7, f"{OPERAND} after 'OR', found end of query"),
        ("late AND", 8, f"{OPERAND} after 'AND', found end of query"),
        ("OR late", 0, f"{OPERAND}, found 'OR'"),
        ("late AND OR delay", 9, f"{OPERAND} after 'AND', found 'OR'"),
        ("NOT", 3, f"{OPERAND} after 'NOT', found end of query"),
        ("()", 1, f"{OPERAND} after '(', found ')'"),
        ("acme -", 6, f"{OPERAND} right after '-'"),
        ("acme - job", 6, f"{OPERAND} right after '-'"),
        ('acme ""', 5, "expected words inside the quotes, found an empty phrase"),
        ('acme " !? "', 5, "expected words inside the quotes, found an empty phrase"),
        (
            'acme "late flight',
            17,
            "expected '\"' to close the phrase opened at character 5",
        ),
        ('"late flight"~', 14, "expected a number after '~'"),
        ('"late flight"~x', 14, "expected a number after '~'"),
        (
            "refund~2",
            6,
            "expected '~' only right after a quoted phrase (as in \"a b\"~5)",
        ),
        ("delay NEAR/x refund", 11, "expected a number after 'NEAR/'"),
        ("delay NEAR/ refund", 11, "expected a number after 'NEAR/'"),
        (
            "delay NEAR refund",
            10,
            "expected '/' and a number after 'NEAR' (as in NEAR/3)",
        ),
        ("delay NEAR/3", 12, f"{OPERAND} after 'NEAR/3', found end of query"),
        ("NEAR/3 refund", 0, f"{OPERAND}, found 'NEAR/3'"),
        ("delay NEAR/3 -refund", 13, f"{OPERAND} after 'NEAR/3', found '-'"),
        (
            "(a AND b) NEAR/3 c",
            0,
            "expected a term, phrase, #tag, @handle, wildcard or an OR group of "
            "them beside 'NEAR/3'",
        ),
        (
            'a NEAR/3 "b c"~2',
            9,
            "expected a term, phrase, #tag, @handle, wildcard or an OR group of "
            "them beside 'NEAR/3'",
        ),
        ("acme #", 6, "expected a tag name (letters, digits or '_') after '#'"),
        ("acme #acme-air", 6, "expected a tag name (letters, digits or '_') after '#'"),
        ("acme @", 6, "expected a handle after '@'"),
        ("re*", 0, "expected at least 3 letters before '*'"),
        ("re*fund", 2, "expected '*' only at the end of a word"),
        ("acme !*", 5, "expected letters or digits before '*'"),
        ("acme ?!", 5, "expected a term with letters or digits, found '?!'"),
        (
            "acme color:red",
            5,
            "expected a field author:, lang: or platform:, found 'color:' "
            "(quote text that contains ':')",
        ),
        ("acme lang:", 10, "expected a value after 'lang:'"),
        (
            "acme lang:english",
            10,
            "expected a language code like 'en' or 'pt-br' after 'lang:'",
        ),
        ("acme author:!!", 12, "expected a handle after 'author:'"),
        ("acme platform:9x", 14, "expected a platform name like 'x' after 'platform:'"),
        ("NOT spam", 0, TOO_BROAD),
        ("-spam -ads", 0, TOO_BROAD),
        ("lang:en platform:x", 0, TOO_BROAD),
        ("acme OR -spam", 8, TOO_BROAD),
        ("acme OR (lang:en -spam)", 9, TOO_BROAD),
    ],
)
def test_malformed_queries_say_where_and_what_was_expected(
    query: str, position: int, message: str
) -> None:
    with pytest.raises(QuerySyntaxError) as error:
        parse_query(query)
    assert (error.value.position, error.value.message) == (position, message)
    assert str(error.value) == f"{message} (at character {position})"


def test_a_term_anywhere_in_an_and_keeps_a_query_narrow_enough() -> None:
    assert parse_query("lang:en -spam acme") == And(
        (Field("lang", "en", 0), Not(term("spam", 9), 8), term("acme", 14)), 0
    )


# Matching: words, phrases, operators


def test_terms_match_whole_words_in_any_case() -> None:
    assert matches("refund", "Where is my REFUND?")
    assert not matches("refund", "refunds are slow")
    assert not matches("fund", "refund please")


def test_accents_fold_both_ways() -> None:
    assert matches("retard", "Encore un rétard")
    assert matches("rétard", "encore un RETARD")
    assert matches("strasse", "Hauptstraße? nein, Straße")
    assert matches('"cafe creme"', "Un café crème")


def test_full_width_letters_fold_to_plain_ones() -> None:
    assert matches("acme", "\uff21\uff23\uff2d\uff25 is down")


def test_words_of_other_scripts_keep_their_vowel_signs() -> None:
    assert matches("हिन्दी", "मुझे हिन्दी में जवाब दो")
    assert not matches("हि", "मुझे हिन्दी में जवाब दो")


def test_emoji_and_other_symbols_separate_words() -> None:
    assert matches('"late flight"', "late\u2708\ufe0fflight \U0001f621")
    assert matches("#fail NEAR/0 acme", "acme \U0001f621 #fail\u2026")
    assert matches("#fail NEAR/0 हिन्दी", "हिन्दी \u2014 #fail")
    assert not matches("#fail NEAR/0 हिन्दी", "हिन्दी \u2014 और #fail")


def test_phrases_need_their_words_adjacent_and_in_order() -> None:
    assert matches('"late flight"', "my late, flight")
    assert not matches('"late flight"', "flight late")
    assert not matches('"late flight"', "late again flight")


def test_and_or_not() -> None:
    assert matches("delay AND refund", "refund my delay")
    assert not matches("delay AND refund", "refund please")
    assert matches("delay OR refund", "refund please")
    assert not matches("delay OR refund", "hello")
    assert matches("refund NOT scam", "refund please")
    assert not matches("refund NOT scam", "refund scam")


def test_implicit_and_and_parentheses() -> None:
    assert matches("acme (delay OR late)", "acme is late")
    assert not matches("acme (delay OR late)", "acme is fine")


def test_exclusions_drop_terms_and_phrases() -> None:
    query = 'acme -job -"press release"'
    assert matches(query, "acme lost my bag")
    assert not matches(query, "acme job offer")
    assert not matches(query, "acme press release today")
    assert matches(query, "acme release the press")


def test_a_term_matches_plain_words_tags_and_handles() -> None:
    assert matches("acme", "#acme rocks")
    assert matches("acme", "hey @acme")
    assert matches('"acme air"', "@acme-air.bsky.social hi")


def test_a_tag_matches_only_the_hashtag() -> None:
    assert matches("#acmeair", "Love #AcmeAir!")
    assert not matches("#acmeair", "love acmeair")
    assert not matches("#acmeair", "love @acmeair")
    assert not matches("#acme", "love #acmeair")
    assert not matches("#sharp", "i code in c#sharp")


def test_a_handle_matches_only_the_mention() -> None:
    assert matches("@acme", "@Acme help!")
    assert matches("@acme", "(@acme)")
    assert not matches("@acme", "acme help")
    assert not matches("@acme", "mail bob@acme.com")
    assert not matches("@acme", "@acme.bsky.social help")
    assert matches("@acme.bsky.social", "@acme.bsky.social. help")


def test_a_prefix_matches_words_that_start_with_it() -> None:
    assert matches("refund*", "they refunded me")
    assert matches("refund*", "refund")
    assert not matches("refund*", "prerefund")


# Matching: proximity


def test_proximity_phrase_allows_any_order_within_the_distance() -> None:
    assert matches('"late flight"~2', "the flight was very late")
    assert matches('"late flight"~2', "late flight")
    assert not matches('"late flight"~2', "the flight was very very late")


def test_proximity_phrase_of_three_words_counts_the_words_among_them() -> None:
    query = '"lost bag airport"~1'
    assert matches(query, "airport lost my bag")
    assert not matches(query, "airport lost my red bag")


def test_proximity_phrase_needs_each_repeated_word_twice() -> None:
    assert not matches('"very very late"~3', "very late")
    assert matches('"very very late"~3', "very late and very")


def test_near_counts_the_words_between_in_either_order() -> None:
    assert matches("delay NEAR/3 refund", "delay and no refund")
    assert matches("delay NEAR/3 refund", "refund after a long delay")
    assert not matches("delay NEAR/3 refund", "delay, still no full cash refund")


def test_near_and_a_two_word_proximity_phrase_agree() -> None:
    for text in ["late flight", "flight a b late", "flight a b c late", "late"]:
        assert matches("late NEAR/2 flight", text) == matches('"late flight"~2', text)


def test_near_with_groups_phrases_and_wildcards() -> None:
    query = '"acme air" NEAR/3 (refund* OR "lost bag")'
    assert matches(query, "acme air still owes a refund")
    assert matches(query, "lost bag again acme air")
    assert not matches(query, "acme air is fine, and my lost bag too")


def test_near_operands_must_not_overlap() -> None:
    assert not matches("refund NEAR/0 refund*", "refund")
    assert matches("refund NEAR/0 refund*", "refund refunded")


def test_near_chains_measure_from_the_joined_span() -> None:
    query = "a NEAR/0 b NEAR/0 c"
    assert matches(query, "a b c")
    assert matches(query, "c b a")
    assert not matches(query, "a b x c")


def test_near_with_tags_and_dotted_handles() -> None:
    query = "@acme-air.bsky.social NEAR/1 #fail"
    assert matches(query, "hey @acme-air.bsky.social big #fail")
    assert not matches(query, "hey @acme-air.bsky.social big big #fail")
    assert not matches(query, "acme-air.bsky.social big #fail")


# Matching: fields, variants, rules


def test_author_filter_folds_and_ignores_the_at_sign() -> None:
    assert matches("acme author:bob", "acme", author="@Bob")
    assert not matches("acme author:bob", "acme", author="bobby")


def test_language_filter_matches_the_language_and_its_regions() -> None:
    assert matches("acme lang:en", "acme", language="en")
    assert matches("acme lang:en", "acme", language="en_GB")
    assert not matches("acme lang:en", "acme", language="eo")
    assert not matches("acme lang:en-gb", "acme", language="en")


def test_platform_filter_in_the_query() -> None:
    assert matches("acme platform:x", "acme", platform="X")
    assert not matches("acme platform:x", "acme", platform="reddit")


def test_variants_match_every_listed_spelling() -> None:
    query = '"acme air" AND refund'
    for text in [
        "acme air refund",
        "AcmeAir refund",
        "acme-air refund",
        "Akme Air refund",
    ]:
        assert matches(query, text, variants=ACME)
    assert not matches(query, "acme refund", variants=ACME)
    assert not matches(query, "acmeair refund")


def test_variants_apply_in_proximity() -> None:
    assert matches('"acme air" NEAR/1 refund', "akme air no refund", variants=ACME)
    assert not matches(
        '"acme air" NEAR/1 refund', "akme air, still no refund", variants=ACME
    )


def test_brand_posts_never_match() -> None:
    matcher = compile_rules([Rule(1, 7, "acme")])
    assert matcher.match(Post("acme here", author_is_brand=True)) == []
    assert matcher.match(Post("acme here")) == [RuleMatch(1, 7, "inbox")]


def test_rule_platforms_restrict_where_a_rule_listens() -> None:
    matcher = compile_rules(
        [Rule(1, 7, "acme", platforms=frozenset({"x", "Reddit"})), Rule(2, 7, "acme")]
    )
    assert [m.rule_id for m in matcher.match(Post("acme", platform="reddit"))] == [1, 2]
    assert [m.rule_id for m in matcher.match(Post("acme", platform="facebook"))] == [2]


def test_matches_come_in_rule_order_with_brand_and_action() -> None:
    matcher = compile_rules(
        [
            Rule(30, 3, "late"),
            Rule(10, 1, "acme", action="feed"),
            Rule(20, 2, "globex"),
            Rule(40, 1, '"acme late"'),
        ]
    )
    assert matcher.match(Post("acme late again")) == [
        RuleMatch(30, 3, "inbox"),
        RuleMatch(10, 1, "feed"),
        RuleMatch(40, 1, "inbox"),
    ]
    assert len(matcher) == 4


def test_only_rules_whose_anchors_occur_are_evaluated() -> None:
    rules = [Rule(1, 1, "acme AND refund -job"), Rule(2, 2, "globex OR #globex")]
    rules += [Rule(10 + n, 3, f"refund AND brand{n}") for n in range(5)]
    matcher = compile_rules(rules)
    # "refund" is in six rules, so each rule is found by its rarer word.
    assert matcher.candidates(Post("refund please")) == []
    assert matcher.candidates(Post("acme refund, #globex")) == [1, 2]
    assert matcher.candidates(Post("brand3 and brand4")) == [13, 14]
    assert matcher.match(Post("brand3 and brand4")) == []


def test_no_rules_match_nothing() -> None:
    assert compile_rules([]).match(Post("anything")) == []


def test_empty_posts_match_nothing() -> None:
    assert compile_rules([Rule(1, 1, "acme")]).match(Post(" !? ")) == []


def test_a_bad_rule_names_itself() -> None:
    with pytest.raises(QuerySyntaxError) as error:
        compile_rules([Rule(1, 1, "acme"), Rule(2, 1, "acme OR")])
    assert error.value.rule_id == 2
    assert error.value.position == 7
    assert str(error.value) == (
        f"rule 2: {OPERAND} after 'OR', found end of query (at character 7)"
    )


def test_actions_and_platforms_are_checked() -> None:
    with pytest.raises(RuleError) as error:
        compile_rules([Rule(5, 1, "acme", action="inbox?")])  # type: ignore[arg-type]
    assert (error.value.rule_id, error.value.message) == (
        5,
        "expected action 'inbox' or 'feed', found 'inbox?'",
    )
    with pytest.raises(RuleError) as error:
        compile_rules([Rule(6, 1, "acme", platforms=frozenset())])
    assert (error.value.rule_id, error.value.message) == (
        6,
        "platforms is empty: use None for every platform",
    )


def test_fold_lowers_decomposes_and_strips_accents() -> None:
    assert fold("Ça Straße \uff21\uff22 İstanbul") == "ca strasse ab istanbul"


# Property tests: the compiled matcher against a naive evaluator.
#
# Posts are generated as tokens (sigil, name), so the evaluator below knows their
# words, tags and handles without splitting any text; the matcher gets the tokens
# rendered with random case, accents and punctuation. Queries are generated as
# text, parsed by `parse_query`, and the evaluator walks each tree directly, with
# brute force for proximity, for every rule in turn.

WORDS = ["acme", "air", "late", "flight", "refund", "delay"]
POST_WORDS = [*WORDS, "refunded", "acmeair", "akme", "refnd", "the"]
TAGS = ["acme", "late", "acmeair"]
HANDLES = ["acme", "acme.air", "bob"]
PREFIXES = ["ref*", "del*", "fli*", "acm*"]
FIELDS = ["author:bob", "author:@acme", "lang:en", "lang:en-gb", "platform:x"]
VARIANT_SETS: list[dict[str, list[str]]] = [
    {},
    {"acme air": ["acmeair", "akme air"], "refund": ["refnd"]},
]
ACCENTED = str.maketrans("aeu", "áéü")
SEPARATORS = [" ", "  ", ", ", ". ", "! ", " - ", "\n", " ("]
GLUE = ["#", "@", "-", "."]  # between two words: "late#acme" holds no tag


@dataclass(frozen=True)
class Sample:
    """A generated post: its tokens and the Post the matcher sees."""

    tokens: tuple[tuple[str, str], ...]
    post: Post

    @property
    def words(self) -> list[str]:
        return [part for _sigil, name in self.tokens for part in name.split(".")]

    def marked(self, sigil: str) -> list[tuple[str, int, int]]:
        """(name, first word, last word) of each token carrying `sigil`."""
        found, at = [], 0
        for token_sigil, name in self.tokens:
            size = len(name.split("."))
            if token_sigil == sigil:
                found.append((name, at, at + size - 1))
            at += size
        return found


def spans(node: Node, sample: Sample) -> set[tuple[int, int]]:
    words = sample.words
    if isinstance(node, Phrase):
        return {
            (start, start + len(spelling) - 1)
            for spelling in node.alternatives
            for start in range(len(words))
            if tuple(words[start : start + len(spelling)]) == spelling
        }
    if isinstance(node, Prefix):
        return {(at, at) for at, word in enumerate(words) if word.startswith(node.stem)}
    if isinstance(node, Tag | Handle):
        sigil = "#" if isinstance(node, Tag) else "@"
        return {(a, b) for name, a, b in sample.marked(sigil) if name == node.name}
    if isinstance(node, Or):
        return {span for child in node.children for span in spans(child, sample)}
    assert isinstance(node, Near)
    return {
        (min(a[0], b[0]), max(a[1], b[1]))
        for a in spans(node.left, sample)
        for b in spans(node.right, sample)
        if 0 <= max(b[0] - a[1], a[0] - b[1]) - 1 <= node.distance
    }


def within(words: list[str], spelling: tuple[str, ...], distance: int) -> bool:
    """Some choice of distinct places, one per word, spans few enough others."""
    choices = [[at for at, seen in enumerate(words) if seen == w] for w in spelling]
    return any(
        len(set(places)) == len(places)
        and max(places) - min(places) + 1 - len(places) <= distance
        for places in itertools.product(*choices)
    )


def holds(node: Node, sample: Sample) -> bool:
    post = sample.post
    if isinstance(node, And):
        return all(holds(child, sample) for child in node.children)
    if isinstance(node, Or):
        return any(holds(child, sample) for child in node.children)
    if isinstance(node, Not):
        return not holds(node.child, sample)
    if isinstance(node, Proximity):
        return any(
            within(sample.words, spelling, node.distance)
            for spelling in node.alternatives
        )
    if isinstance(node, Field):
        if node.name == "author":
            return post.author_handle.lower().removeprefix("@") == node.value
        if node.name == "lang":
            language = post.language.lower()
            return language == node.value or language.startswith(node.value + "-")
        return post.platform == node.value
    return bool(spans(node, sample))


def expected_ids(rules: list[Rule], sample: Sample) -> list[int]:
    if sample.post.author_is_brand:
        return []
    return [
        rule.id
        for rule in rules
        if (rule.platforms is None or sample.post.platform in rule.platforms)
        and holds(parse_query(rule.query, rule.variants), sample)
    ]


@st.composite
def styled(draw: st.DrawFn, word: str) -> str:
    """The word in some case, maybe with accents (folding must undo both)."""
    if draw(st.booleans()):
        word = word.translate(ACCENTED)
    return draw(st.sampled_from([word, word.upper(), word.title()]))


PHRASE = st.lists(st.sampled_from(WORDS), min_size=2, max_size=3).map(
    lambda chosen: '"' + " ".join(chosen) + '"'
)
WORD_LEAF = st.one_of(
    st.sampled_from(WORDS).flatmap(styled),
    PHRASE,
    st.sampled_from(TAGS).map(lambda tag: "#" + tag),
    st.sampled_from(HANDLES).map(lambda handle: "@" + handle),
    st.sampled_from(PREFIXES),
)
NEAR_GROUP = st.tuples(
    st.lists(WORD_LEAF, min_size=1, max_size=2).map(
        lambda leaves: "(" + " OR ".join(leaves) + ")"
    ),
    st.integers(0, 3),
    WORD_LEAF,
).map(lambda near: f"{near[0]} NEAR/{near[1]} {near[2]}")
PROXIMITY = st.tuples(PHRASE, st.integers(0, 3)).map(lambda p: f"{p[0]}~{p[1]}")
QUERY = st.recursive(
    st.one_of(WORD_LEAF, NEAR_GROUP, PROXIMITY, st.sampled_from(FIELDS)),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} OR {pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} AND {pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} {pair[1]})"),
        st.tuples(inner, st.integers(0, 3), inner).map(
            lambda near: f"{near[0]} NEAR/{near[1]} {near[2]}"
        ),
        inner.map(lambda query: f"NOT {query}"),
        inner.map(lambda query: f"-({query})"),
    ),
    max_leaves=6,
)
# Most rules in use start from a term; these also compile more often than not.
RULE_QUERY = st.one_of(
    QUERY,
    st.tuples(WORD_LEAF, QUERY).map(lambda pair: f"{pair[0]} ({pair[1]})"),
    st.tuples(WORD_LEAF, st.sampled_from(FIELDS)).map(" ".join),
    st.tuples(WORD_LEAF, WORD_LEAF).map(lambda pair: f"{pair[0]} -{pair[1]}"),
)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    """Rules over the small vocabulary; those too broad to compile are left out."""
    rules = []
    for rule_id in range(1, draw(st.integers(1, 8)) + 1):
        rule = Rule(
            id=rule_id,
            brand_id=draw(st.integers(1, 3)),
            query=draw(RULE_QUERY),
            platforms=draw(st.sampled_from([None, frozenset({"x"})])),
            variants=draw(st.sampled_from(VARIANT_SETS)),
        )
        try:
            parse_query(rule.query, rule.variants)
        except QuerySyntaxError:
            continue
        rules.append(rule)
    return rules


TOKEN = st.one_of(
    st.sampled_from(POST_WORDS).map(lambda word: ("", word)),
    st.sampled_from(TAGS).map(lambda tag: ("#", tag)),
    st.sampled_from(HANDLES).map(lambda handle: ("@", handle)),
)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    tokens = tuple(draw(st.lists(TOKEN, min_size=1, max_size=12)))
    text, previous = "", None
    for sigil, name in tokens:
        separator = draw(st.sampled_from(SEPARATORS))
        # A dot or hyphen after a handle would lengthen it: glue only after words.
        if previous == "" and not sigil and draw(st.integers(0, 2)) == 0:
            separator = draw(st.sampled_from(GLUE))
        text += separator + sigil + draw(styled(name))
        previous = sigil
    post = Post(
        text=text + draw(st.sampled_from(["", ".", "!", " :)"])),
        author_handle=draw(st.sampled_from(["bob", "@Bob", "acme", "eve"])),
        language=draw(st.sampled_from(["en", "en-GB", "fr", ""])),
        platform=draw(st.sampled_from(["x", "reddit"])),
        author_is_brand=draw(st.sampled_from([False, False, False, True])),
    )
    return Sample(tokens, post)


@settings(max_examples=200, deadline=None)
@given(rules=rule_sets(), posts=st.lists(samples(), min_size=1, max_size=6))
def test_compiled_matcher_agrees_with_evaluating_every_rule(
    rules: list[Rule], posts: list[Sample]
) -> None:
    matcher = compile_rules(rules)
    for sample in posts:
        found = [match.rule_id for match in matcher.match(sample.post)]
        assert found == expected_ids(rules, sample)


# Proximity on its own: three words and a filler, so distances hit the limits.
CLOSE_WORDS = ["late", "flight", "refund"]
CLOSE_LEAF = st.one_of(
    st.sampled_from(CLOSE_WORDS),
    st.permutations(CLOSE_WORDS).map(lambda words: f'"{words[0]} {words[1]}"'),
    st.just("(late OR refund)"),
)
CLOSE_QUERY = st.one_of(
    st.tuples(
        st.lists(st.sampled_from(CLOSE_WORDS), min_size=2, max_size=3),
        st.integers(0, 3),
    ).map(lambda pair: '"' + " ".join(pair[0]) + f'"~{pair[1]}'),
    st.tuples(CLOSE_LEAF, st.integers(0, 3), CLOSE_LEAF).map(
        lambda near: f"{near[0]} NEAR/{near[1]} {near[2]}"
    ),
    st.tuples(
        CLOSE_LEAF, st.integers(0, 2), CLOSE_LEAF, st.integers(0, 2), CLOSE_LEAF
    ).map(lambda n: f"{n[0]} NEAR/{n[1]} {n[2]} NEAR/{n[3]} {n[4]}"),
)
CLOSE_POST = st.lists(st.sampled_from([*CLOSE_WORDS, "the"]), min_size=1, max_size=9)


@settings(max_examples=200, deadline=None)
@given(
    queries=st.lists(CLOSE_QUERY, min_size=1, max_size=5),
    posts=st.lists(CLOSE_POST, min_size=1, max_size=6),
)
def test_proximity_agrees_with_trying_every_placement(
    queries: list[str], posts: list[list[str]]
) -> None:
    rules = [Rule(n, 1, query) for n, query in enumerate(queries, start=1)]
    matcher = compile_rules(rules)
    for words in posts:
        sample = Sample(tuple(("", word) for word in words), Post(" ".join(words)))
        found = [match.rule_id for match in matcher.match(sample.post)]
        assert found == expected_ids(rules, sample)


@settings(max_examples=200, deadline=None)
@given(query=st.text(alphabet='ab "()-#@*:~/NEARORTD3', max_size=24))
def test_any_text_parses_or_fails_with_a_position_inside_it(query: str) -> None:
    position = 0
    try:
        parse_query(query)
    except QuerySyntaxError as error:
        position = error.position
    assert 0 <= position <= len(query)
