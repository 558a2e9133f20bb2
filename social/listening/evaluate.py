"""Rule trees turned into test functions over one post.

The candidate scan (`matcher.py`) reports every literal key of every rule that occurs
in the post, so plain words, phrases and prefixes are tested by set membership;
word positions, hashtags and handles are worked out only when a test needs them.
"""

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property

from social.listening.nodes import (
    And,
    Field,
    Handle,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Proximity,
    Tag,
    anchors,
)
from social.listening.text import (
    fold,
    handles_in,
    has_handle,
    has_tag,
    split_words,
    stream_key,
    tags_in,
    word_starts,
)


class View:
    """One post as the rule tests read it.

    `present` holds the automaton keys found in the post (every literal key of every
    compiled rule that occurs in it). The rest is worked out when a test asks.
    """

    def __init__(
        self,
        folded: str,
        words: list[str],
        present: set[str],
        author_handle: str,
        language: str,
        platform: str,
    ) -> None:
        self.folded = folded
        self.words = tuple(words)
        self.present = present
        self.author_handle = author_handle
        self.raw_language = language
        self.platform = platform
        self._places: dict[str, list[int]] = {}

    def places(self, word: str) -> list[int]:
        """Ascending indexes of `word` in the post."""
        found = self._places.get(word)
        if found is None:
            found = []
            at = -1
            for _ in range(self.words.count(word)):
                at = self.words.index(word, at + 1)
                found.append(at)
            self._places[word] = found
        return found

    @cached_property
    def tag_spans(self) -> dict[str, list[tuple[int, int]]]:
        starts = word_starts(self.folded)
        spans: dict[str, list[tuple[int, int]]] = {}
        for offset, name in tags_in(self.folded):
            spans.setdefault(name, []).append((starts[offset], starts[offset]))
        return spans

    @cached_property
    def handle_spans(self) -> dict[str, list[tuple[int, int]]]:
        starts = word_starts(self.folded)
        spans: dict[str, list[tuple[int, int]]] = {}
        for offset, name in handles_in(self.folded):
            first = starts[offset]
            last = first + len(split_words(name)) - 1
            spans.setdefault(name, []).append((first, last))
        return spans

    @cached_property
    def author(self) -> str:
        return fold(self.author_handle).removeprefix("@")

    @cached_property
    def language(self) -> str:
        return self.raw_language.lower().replace("_", "-")


Test = Callable[[View], bool]
Spans = Callable[[View], list[tuple[int, int]]]


def literal_keys(node: Node) -> Iterator[str]:
    """Every automaton key the tests of `node` look up in `View.present`."""
    if isinstance(node, And | Or):
        for child in node.children:
            yield from literal_keys(child)
    elif isinstance(node, Near):
        yield from literal_keys(node.left)
        yield from literal_keys(node.right)
    elif isinstance(node, Not):
        yield from literal_keys(node.child)
    elif isinstance(node, Proximity):
        for words in node.alternatives:
            yield from (stream_key((word,)) for word in words)
    elif not isinstance(node, Field):
        yield from anchors(node) or ()


def compile_test(node: Node) -> Test:
    """A function that tells whether `node` matches a post's view.

    Precondition: the view's `present` was filled by an automaton holding every key
    of `literal_keys(node)`.
    """
    match node:
        case Phrase() | Prefix():
            return _any_plain([node])
        case Tag(name=name):
            marked = "#" + name
            return lambda view: has_tag(view.folded, marked)
        case Handle(name=name):
            mention = "@" + name
            return lambda view: has_handle(view.folded, mention)
        case Near(left=left, right=right):
            # Positions are worked out only when both sides are there at all.
            has_left, has_right = compile_test(left), compile_test(right)
            spans = _spans(node)
            return lambda view: has_left(view) and has_right(view) and bool(spans(view))
        case Proximity():
            return _proximity_test(node)
        case And():
            return _all(node)
        case Or():
            return _any(node)
        case Not(child=child):
            inner = compile_test(child)
            return lambda view: not inner(view)
        case Field():
            return _field_test(node)


def _all(node: And) -> Test:
    excluded = [
        c.child for c in node.children if isinstance(c, Not) and _plain(c.child)
    ]
    others = [c for c in node.children if not (isinstance(c, Not) and _plain(c.child))]
    tests = [compile_test(child) for child in others]
    if excluded:
        # Exclusions are usually plain words and phrases: one test for all of them.
        present = _any_plain(excluded)
        tests.append(lambda view: not present(view))
    if len(tests) == 2:
        first, second = tests
        return lambda view: first(view) and second(view)
    return lambda view: all(each(view) for each in tests)


def _any(node: Or) -> Test:
    plain = [child for child in node.children if _plain(child)]
    tests = [compile_test(child) for child in node.children if not _plain(child)]
    if plain:
        tests.insert(0, _any_plain(plain))
    if len(tests) == 1:
        return tests[0]
    return lambda view: any(each(view) for each in tests)


def _plain(node: Node) -> bool:
    """Whether the node is found by its automaton keys alone."""
    return isinstance(node, Phrase | Prefix)


def _any_plain(nodes: Sequence[Node]) -> Test:
    keys = frozenset(key for node in nodes for key in anchors(node) or ())
    if len(keys) == 1:
        (key,) = keys
        return lambda view: key in view.present
    return lambda view: not keys.isdisjoint(view.present)


def _field_test(node: Field) -> Test:
    value = node.value
    if node.name == "author":
        return lambda view: view.author == value
    if node.name == "platform":
        return lambda view: view.platform == value
    subtag = value + "-"
    return lambda view: view.language == value or view.language.startswith(subtag)


def _spans(node: Node) -> Spans:
    """Word spans (first, last) of each occurrence of a positional node."""
    if isinstance(node, Phrase):
        return _phrase_spans(node.alternatives)
    if isinstance(node, Prefix):
        stem = node.stem
        return lambda view: [
            (at, at) for at, word in enumerate(view.words) if word.startswith(stem)
        ]
    if isinstance(node, Tag):
        tag = node.name
        return lambda view: view.tag_spans.get(tag, [])
    if isinstance(node, Handle):
        handle = node.name
        return lambda view: view.handle_spans.get(handle, [])
    if isinstance(node, Or):
        parts = tuple(_spans(child) for child in node.children)
        return lambda view: [span for part in parts for span in part(view)]
    if isinstance(node, Near):
        return _near_spans(_spans(node.left), _spans(node.right), node.distance)
    raise TypeError(f"{type(node).__name__} has no word positions")


def _phrase_spans(alternatives: tuple[tuple[str, ...], ...]) -> Spans:
    def spans(view: View) -> list[tuple[int, int]]:
        found = []
        for words in alternatives:
            size = len(words)
            for start in view.places(words[0]):
                if view.words[start : start + size] == words:
                    found.append((start, start + size - 1))
        return found

    return spans


def _near_spans(left: Spans, right: Spans, distance: int) -> Spans:
    def spans(view: View) -> list[tuple[int, int]]:
        firsts = left(view)
        seconds = right(view) if firsts else []
        return [
            (min(a_first, b_first), max(a_last, b_last))
            for a_first, a_last in firsts
            for b_first, b_last in seconds
            if 0 <= max(b_first - a_last, a_first - b_last) - 1 <= distance
        ]

    return spans


def _proximity_test(node: Proximity) -> Test:
    needs = tuple(
        (
            frozenset(stream_key((word,)) for word in words),
            tuple(Counter(words).items()),
            node.distance + len(words) - 1,
        )
        for words in node.alternatives
    )

    def test(view: View) -> bool:
        return any(
            keys <= view.present and _within(view, counts, width)
            for keys, counts, width in needs
        )

    return test


def _within(view: View, counts: tuple[tuple[str, int], ...], width: int) -> bool:
    """Whether some window of `width + 1` words holds each word as often as needed."""
    places = []
    for word, count in counts:
        found = view.places(word)
        if len(found) < count:
            return False
        places.append((found, count))
    starts = sorted({at for found, _count in places for at in found})
    return any(
        all(
            bisect_right(found, start + width) - bisect_left(found, start) >= count
            for found, count in places
        )
        for start in starts
    )
