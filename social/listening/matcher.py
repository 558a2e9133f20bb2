"""Many listening rules compiled into one matcher (DESIGN R1; budget in section 6).

Compiling parses every rule, picks for each the literal keys of which every match
must contain one (`nodes.anchors`, preferring keys few rules share), and loads all
keys of all rules into one Aho-Corasick automaton. Matching a post folds and splits
its text once, scans it with the automaton, and evaluates only the rules whose
anchors were found (`evaluate.py`), reading which keys are present and, where a
rule needs them, the post's word positions. Per post the work grows with the
post and with the rules it may match, not with the number of rules.
"""

import gc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

import ahocorasick  # type: ignore[import-not-found]  # ships no type stubs

from social.listening.evaluate import Test, View, compile_test, literal_keys
from social.listening.nodes import Node, RuleError, anchors
from social.listening.query import parse_query
from social.listening.text import fold, split_words, stream_of

# "competitor": a competitor rule's matches go to the competitor feed (advocacy).
Action = Literal["inbox", "feed", "competitor"]
ACTIONS: tuple[Action, ...] = ("inbox", "feed", "competitor")


@dataclass(frozen=True, slots=True)
class Rule:
    """One brand's listening rule, as the matcher needs it.

    `platforms` None means every platform. `variants` maps a canonical term or
    phrase of the query to misspellings that match wherever it does.
    """

    id: int
    brand_id: int
    query: str
    platforms: frozenset[str] | None = None
    action: Action = "inbox"
    variants: Mapping[str, Sequence[str]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Post:
    """A public item as the connectors parsed it. `author_is_brand` is set by the
    caller when one of the brands' own accounts wrote it; such posts match nothing."""

    text: str
    author_handle: str = ""
    language: str = ""
    platform: str = ""
    author_is_brand: bool = False


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that matched a post: which rule, whose brand, and what to do."""

    rule_id: int
    brand_id: int
    action: Action


class _Automaton(Protocol):
    """The part of `ahocorasick.Automaton` used here; each value is the key itself
    and the rules (by index) that the key makes candidates."""

    def iter(self, text: str) -> Iterator[tuple[int, tuple[str, frozenset[int]]]]: ...


class Matcher:
    """Rules compiled by `compile_rules`; immutable, safe to share between threads."""

    def __init__(
        self,
        automaton: _Automaton | None,
        tests: list[Test],
        platforms: list[frozenset[str] | None],
        results: list[RuleMatch],
    ) -> None:
        self._automaton = automaton
        self._tests = tests
        self._platforms = platforms
        self._results = results

    def __len__(self) -> int:
        return len(self._results)

    def candidates(self, post: Post) -> list[int]:
        """Ids of the rules whose keys occur in the post: the only ones evaluated."""
        hits, _present = self._scan(stream_of(split_words(fold(post.text))))
        return [self._results[index].rule_id for index in sorted(hits)]

    def match(self, post: Post) -> list[RuleMatch]:
        """The rules that match `post`, in the order they were compiled.

        Posts by the brands themselves (`author_is_brand`) match nothing. A rule with
        `platforms` matches only posts from one of them.
        """
        if post.author_is_brand:
            return []
        folded = fold(post.text)
        words = split_words(folded)
        hits, present = self._scan(stream_of(words))
        if not hits:
            return []
        platform = post.platform.lower()
        view = View(folded, words, present, post.author_handle, post.language, platform)
        found = []
        for index in sorted(hits):
            platforms = self._platforms[index]
            if platforms is not None and platform not in platforms:
                continue
            if self._tests[index](view):
                found.append(self._results[index])
        return found

    def _scan(self, stream: str) -> tuple[set[int], set[str]]:
        """The candidate rules and the keys present in the post's words."""
        hits: set[int] = set()
        present: set[str] = set()
        if self._automaton is not None:
            for _end, (key, rules) in self._automaton.iter(stream):
                present.add(key)
                hits |= rules
        return hits, present


def compile_rules(rules: Sequence[Rule]) -> Matcher:
    """Parse and index `rules` into one Matcher.

    Raises RuleError (QuerySyntaxError for the query itself) for the first invalid
    rule, with `rule_id` set: a malformed or too broad query, an unknown action, an
    empty platform set or a variant without words.
    """
    with _collector_paused():
        return _compile(rules)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while compiling.

    Compiling allocates a few hundred thousand long-lived objects (nodes, closures,
    sets) and no garbage cycles; the collector's repeated full passes over them made
    up about a third of the compile time of 10,000 rules.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compile(rules: Sequence[Rule]) -> Matcher:
    trees = [_parse_rule(rule) for rule in rules]
    usage = Counter(key for tree in trees for key in set(literal_keys(tree)))
    # Every key goes in: the tests read which ones are present. Only anchors make
    # their rule a candidate; the least used anchors are chosen (brand names, say).
    index: dict[str, set[int]] = {key: set() for key in usage}
    for position, tree in enumerate(trees):
        for key in anchors(tree, usage.__getitem__) or ():
            index[key].add(position)
    automaton = None
    if index:
        automaton = ahocorasick.Automaton()
        for key, positions in index.items():
            automaton.add_word(key, (key, frozenset(positions)))
        automaton.make_automaton()
    return Matcher(
        cast(_Automaton | None, automaton),
        [compile_test(tree) for tree in trees],
        [_platform_set(rule) for rule in rules],
        [RuleMatch(rule.id, rule.brand_id, rule.action) for rule in rules],
    )


def _parse_rule(rule: Rule) -> Node:
    try:
        if rule.action not in ACTIONS:
            raise RuleError(f"expected action 'inbox' or 'feed', found {rule.action!r}")
        if rule.platforms is not None and not rule.platforms:
            raise RuleError("platforms is empty: use None for every platform")
        return parse_query(rule.query, rule.variants)
    except RuleError as error:
        error.rule_id = rule.id
        raise


def _platform_set(rule: Rule) -> frozenset[str] | None:
    if rule.platforms is None:
        return None
    return frozenset(platform.lower() for platform in rule.platforms)
