"""The public response badge (R9): a small, self-contained SVG.

Two panels in the style of a README badge: the brand's name on the left and its
figures on the right ("answers 98% of messages, median 12 minutes, last 30
days"). No fonts, images or scripts are fetched: the SVG is text and rectangles
only, so it renders the same in an <img> tag on any site. Every piece of text is
XML-escaped (a brand may be called "Tom & Jerry's <Shop>").
"""

import math
from xml.sax.saxutils import escape

# Average advance of an 11 px Verdana glyph, in pixels. Badges have no text
# metrics to hand; a generous estimate keeps long names from overflowing.
CHAR_WIDTH = 7
PADDING = 6
HEIGHT = 20
LABEL_COLOUR = "#555"
VALUE_COLOUR = "#2b7a78"
MAX_LABEL_CHARS = 40


def _width(text: str) -> int:
    return len(text) * CHAR_WIDTH + 2 * PADDING


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def badge_svg(label: str, value: str) -> str:
    """The SVG document of a two-panel badge reading `label` | `value`.

    A label longer than MAX_LABEL_CHARS is cut with an ellipsis. The document
    carries a <title> (tooltips, screen readers) and `role="img"` with an
    `aria-label` of both texts.
    """
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1] + "…"
    left, right = _width(label), _width(value)
    total = left + right
    spoken = f"{label}: {value}"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{total}" height="{HEIGHT}" role="img" '
        f'aria-label="{_attr(spoken)}">'
        f"<title>{escape(spoken)}</title>"
        f'<rect width="{left}" height="{HEIGHT}" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="{HEIGHT}" fill="{VALUE_COLOUR}"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" '
        'font-size="11" text-anchor="middle">'
        f'<text x="{left / 2:g}" y="14">{escape(label)}</text>'
        f'<text x="{left + right / 2:g}" y="14">{escape(value)}</text>'
        "</g></svg>"
    )


def duration_words(seconds: float) -> str:
    """A duration as people say it, never shorter than it was: whole minutes
    rounded up under two hours ("1 minute", "12 minutes"), then whole hours
    rounded up under two days ("3 hours"), then days ("4 days")."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(minutes / 60)
    if hours < 48:
        return f"{hours} hours"
    return f"{math.ceil(hours / 24)} days"
