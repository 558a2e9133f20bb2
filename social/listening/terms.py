"""Keyword-search terms derived from listening rules (R1, platforms without a feed).

X recent search and Reddit search show Earshot only the posts it asks for, so a
brand's inbox rules are turned into search terms that together find every post the
rules can match on one platform. The terms are a recall net, not the decision:
every result still goes through the compiled matcher (`social.ingest`) before
anything is recorded, so a broad term costs platform quota, never a wrong record.

A term is one or more space-separated tokens that a post must all contain, in any
order: a word (`acme`), a phrase in double quotes (`"acme air"`), a hashtag
(`#acme`) or a mention (`@acme`); words are folded (lower case, no accents). Terms
are alternatives. Connectors render them (`Connector.search_public`).

For each node of a rule's tree, its *cover*: terms of which every post the node
matches contains at least one.
- A term or phrase: each spelling (as written, then its variants) is one term;
  phrases are quoted. `#tag` and `@handle` are themselves.
- A proximity phrase `"late flight"~5`: all its words unquoted (`late flight`), per
  spelling, since they may come in any order.
- A prefix `refund*`: its stem as a word. Platform search matches whole words, so
  this finds "refund" but not "refunds": such a cover is *inexact* (it may miss
  matches). Beside exact operands of an AND or NEAR it is left out (`acme refund*`
  searches `acme`); alone it is still searched, since nothing better exists.
- AND and NEAR: one term per combination of the operands' terms (`acme (refund OR
  delay)` gives `acme refund` and `acme delay`), so searches stay as narrow as the
  rule. Past MAX_COMBINATIONS, the operand with the fewest terms stands for all.
- OR: the terms of every operand.
- NOT and `-x` exclusions are never searched (nothing inside them is read). Field
  filters add nothing, except that `platform:p` for another platform makes the AND
  around it unable to match here, so it contributes no terms.
A query that needs no words (only in rules saved without validation, e.g. a pure
NOT) or does not parse contributes no terms. A term that contains all the tokens of
another term is dropped (`acme refund` when `acme` is searched anyway).
"""

import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from social.listening.matcher import Rule
from social.listening.nodes import (
    And,
    Field,
    Handle,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Proximity,
    RuleError,
    Tag,
)
from social.listening.query import parse_query

logger = logging.getLogger(__name__)

# Terms one AND or NEAR may expand to before one operand stands for the others.
MAX_COMBINATIONS = 16

Term = tuple[str, ...]  # tokens, all required


@dataclass(frozen=True, slots=True)
class _Cover:
    """Alternative terms of which every match contains one; `exact` is False when a
    platform's whole-word search may miss some matches (prefix stems)."""

    terms: tuple[Term, ...]
    exact: bool = True


_NEVER = _Cover(())  # cannot match on this platform


def search_terms(rules: Iterable[Rule], platform: str) -> list[str]:
    """The search terms of the inbox and competitor rules that apply to
    `platform`, in rule order.

    Feed-only rules are skipped (their matches are never recorded), and so are rules
    limited to other platforms. A rule that does not parse (or needs no words, like
    a pure NOT saved without validation) contributes nothing and is logged.
    Returns terms in the syntax described in the module docstring, deduplicated.
    """
    found: list[Term] = []
    for rule in rules:
        if rule.action not in ("inbox", "competitor"):
            continue
        if rule.platforms is not None and platform not in rule.platforms:
            continue
        try:
            found.extend(_rule_terms(rule.query, rule.variants, platform))
        except RuleError as exc:
            logger.warning("listening rule %s has no search terms: %s", rule.id, exc)
    return [" ".join(term) for term in _without_implied(found)]


def rule_terms(
    query: str, platform: str, variants: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """The search terms of one query on `platform` (see the module docstring).

    Raises RuleError (QuerySyntaxError) when the query does not parse, which
    includes queries that need no words (a pure NOT).
    """
    terms = _without_implied(_rule_terms(query, variants, platform))
    return [" ".join(term) for term in terms]


def _rule_terms(
    query: str, variants: Mapping[str, Sequence[str]] | None, platform: str
) -> list[Term]:
    cover = _cover(parse_query(query, variants), platform)
    return [] if cover is None else list(cover.terms)


def _cover(node: Node, platform: str) -> _Cover | None:
    """The node's cover; None when the node can match without any word."""
    if isinstance(node, Phrase):
        return _Cover(tuple((_phrase(words),) for words in node.alternatives))
    if isinstance(node, Proximity):
        return _Cover(tuple(tuple(dict.fromkeys(w)) for w in node.alternatives))
    if isinstance(node, Prefix):
        return _Cover(((node.stem,),), exact=False)
    if isinstance(node, Tag):
        return _Cover(((f"#{node.name}",),))
    if isinstance(node, Handle):
        return _Cover(((f"@{node.name}",),))
    if isinstance(node, Field):
        return _NEVER if node.name == "platform" and node.value != platform else None
    if isinstance(node, Not):
        return None
    if isinstance(node, Or):
        return _union([_cover(child, platform) for child in node.children])
    children = node.children if isinstance(node, And) else (node.left, node.right)
    return _all_of([_cover(child, platform) for child in children])


def _union(covers: list[_Cover | None]) -> _Cover | None:
    if any(cover is None for cover in covers):
        return None
    live = [cover for cover in covers if cover is not None and cover.terms]
    if not live:
        return _NEVER
    terms = tuple(dict.fromkeys(t for cover in live for t in cover.terms))
    return _Cover(terms, exact=all(cover.exact for cover in live))


def _all_of(covers: list[_Cover | None]) -> _Cover | None:
    needed = [cover for cover in covers if cover is not None]
    if any(not cover.terms for cover in needed):
        return _NEVER
    if not needed:
        return None
    exact = [cover for cover in needed if cover.exact]
    chosen = exact or needed
    if math.prod(len(cover.terms) for cover in chosen) > MAX_COMBINATIONS:
        return min(chosen, key=lambda cover: len(cover.terms))
    terms = tuple(
        dict.fromkeys(
            tuple(dict.fromkeys(token for term in combo for token in term))
            for combo in itertools.product(*(cover.terms for cover in chosen))
        )
    )
    return _Cover(terms, exact=bool(exact))


def _phrase(words: tuple[str, ...]) -> str:
    text = " ".join(words)
    return f'"{text}"' if len(words) > 1 else text


def _without_implied(terms: list[Term]) -> list[Term]:
    """Unique terms, dropping any that contains all the tokens of another."""
    unique = list(dict.fromkeys(terms, None))
    sets = [frozenset(term) for term in unique]
    kept: dict[frozenset[str], Term] = {}
    for term, tokens in zip(unique, sets, strict=True):
        if tokens in kept:
            continue
        if any(other < tokens for other in sets):
            continue
        kept[tokens] = term
    return list(kept.values())
