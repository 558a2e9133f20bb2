"""The listening query's syntax tree, its errors, and the literal keys a tree needs.

`social/listening/__init__.py` documents what each node means; `query.py` builds
trees from text. Trees are immutable and carry each construct's 0-based offset in
the query, for error messages.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from social.listening.text import stream_key, words_of

FieldName = Literal["author", "lang", "platform"]
FIELDS: tuple[FieldName, ...] = ("author", "lang", "platform")


class RuleError(ValueError):
    """A listening rule cannot be compiled. `rule_id` is set by `compile_rules`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.rule_id: int | None = None


class QuerySyntaxError(RuleError):
    """A query is malformed or too broad; `position` is the 0-based offset in it."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position

    def __str__(self) -> str:
        rule = "" if self.rule_id is None else f"rule {self.rule_id}: "
        return f"{rule}{self.message} (at character {self.position})"


@dataclass(frozen=True, slots=True)
class Phrase:
    """Whole words in order; a bare term is a one-word phrase. Any alternative
    (the written words first, then their variants) matches."""

    alternatives: tuple[tuple[str, ...], ...]
    position: int
    keys: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        keys = frozenset(stream_key(words) for words in self.alternatives)
        object.__setattr__(self, "keys", keys)


@dataclass(frozen=True, slots=True)
class Proximity:
    """`"a b"~n`: all words of one alternative, in any order, with at most
    `distance` other words among them."""

    alternatives: tuple[tuple[str, ...], ...]
    distance: int
    position: int


@dataclass(frozen=True, slots=True)
class Prefix:
    """`stem*`: a word that starts with `stem`."""

    stem: str
    position: int
    keys: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        keys = frozenset({stream_key((self.stem,), prefix=True)})
        object.__setattr__(self, "keys", keys)


@dataclass(frozen=True, slots=True)
class Tag:
    """`#name`: the hashtag, not the plain word."""

    name: str
    position: int
    keys: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", frozenset({stream_key(words_of(self.name))}))


@dataclass(frozen=True, slots=True)
class Handle:
    """`@name`: the mention of that handle, not the plain words. A handle with dots
    or hyphens spans one word per part (`acme-air.bsky.social` is four)."""

    name: str
    position: int
    keys: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", frozenset({stream_key(words_of(self.name))}))


@dataclass(frozen=True, slots=True)
class Near:
    """`left NEAR/n right`: an occurrence of each with at most `distance` words
    between them, in either order, not overlapping."""

    left: "Node"
    right: "Node"
    distance: int
    position: int


@dataclass(frozen=True, slots=True)
class And:
    """All children match (explicit AND or adjacent operands)."""

    children: tuple["Node", ...]
    position: int


@dataclass(frozen=True, slots=True)
class Or:
    """Any child matches."""

    children: tuple["Node", ...]
    position: int


@dataclass(frozen=True, slots=True)
class Not:
    """`NOT x` or `-x`: the child does not match."""

    child: "Node"
    position: int


@dataclass(frozen=True, slots=True)
class Field:
    """`author:handle` (no @, folded), `lang:xx` (lower-case) or `platform:x`."""

    name: FieldName
    value: str
    position: int


Node = Phrase | Proximity | Prefix | Tag | Handle | Near | And | Or | Not | Field


def is_positional(node: Node) -> bool:
    """Whether `node` has word positions, so it may stand beside NEAR."""
    if isinstance(node, Or):
        return all(is_positional(child) for child in node.children)
    return isinstance(node, Phrase | Prefix | Tag | Handle | Near)


def needs_words(node: Node) -> bool:
    """Whether every post the node matches contains some term, phrase, #tag or
    @handle of it (rather than matching on NOT or field filters alone)."""
    if isinstance(node, And):
        return any(needs_words(child) for child in node.children)
    if isinstance(node, Or):
        return all(needs_words(child) for child in node.children)
    return not isinstance(node, Not | Field)


def anchors(
    node: Node, cost: Callable[[str], int] | None = None
) -> frozenset[str] | None:
    """Automaton keys of which every post the node matches contains at least one.

    None when the node can match without any word (NOT, field filters). Where an
    AND offers several choices, the one of least total `cost` is taken (the matcher
    passes how many rules use each key, so rare keys like brand names win).
    """
    if isinstance(node, Phrase | Prefix | Tag | Handle):
        return node.keys
    if isinstance(node, Proximity):
        # Every word of an alternative must be present, so its rarest one suffices.
        keys: set[str] = set()
        for words in node.alternatives:
            keys |= _cheapest([frozenset({stream_key((w,))}) for w in words], cost)
        return frozenset(keys)
    if isinstance(node, Or):
        keys = set()
        for child in node.children:
            child_keys = anchors(child, cost)
            if child_keys is None:
                return None
            keys |= child_keys
        return frozenset(keys)
    if isinstance(node, And | Near):
        children = node.children if isinstance(node, And) else (node.left, node.right)
        options = [k for k in (anchors(c, cost) for c in children) if k is not None]
        return _cheapest(options, cost) if options else None
    return None


def _cheapest(
    options: Sequence[frozenset[str]], cost: Callable[[str], int] | None
) -> frozenset[str]:
    def weight(keys: frozenset[str]) -> tuple[int, int, int]:
        total = sum(cost(key) for key in keys) if cost else 0
        return total, len(keys), -min(len(key) for key in keys)

    return min(options, key=weight)
