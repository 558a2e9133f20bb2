"""Presentation helpers for the agent UI: relative times, initials, labels.

Display only; no queries and no business rules (those live in services).
"""

import zlib
from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()

HUES = 8


def _span(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


@register.filter
def ago(moment: datetime | None) -> str:
    """ "5m", "3h", "2d": how long ago (the JS clock keeps it current)."""
    if moment is None:
        return ""
    seconds = (timezone.now() - moment).total_seconds()
    return "now" if seconds < 45 else _span(seconds)


@register.filter
def initials(name: str | None) -> str:
    """Up to two initials for an avatar ("Jo Martin" -> "JM", "@jo" -> "J")."""
    words = (name or "").replace("@", " ").replace("_", " ").replace(".", " ").split()
    parts = [word for word in words if word[0].isalnum()]
    letters = "".join(part[0] for part in parts[:2]).upper()
    return letters or "?"


@register.filter
def hue(value: object) -> int:
    """A stable avatar colour index (0-7) for an id or a name."""
    return zlib.crc32(str(value).encode()) % HUES


@register.filter
def compact(number: int | None) -> str:
    """Follower counts as people say them: 830, 2.4k, 152k, 1.2M."""
    n = int(number or 0)
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


@register.filter
def iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


@register.filter
def without_suffix(text: str, suffix: str) -> str:
    """The text without a trailing signature, for editing a held reply."""
    if suffix and text.endswith(suffix):
        return text[: -len(suffix)]
    return text


@register.filter
def lookup(mapping: dict[object, object] | None, key: object) -> object:
    """`mapping[key]` in a template, or an empty list when it is missing."""
    if not mapping:
        return []
    return mapping.get(key, [])


@register.filter
def seconds_left(moment: datetime | None) -> int:
    """Whole seconds until `moment` (0 once it has passed): a hold's countdown."""
    if moment is None:
        return 0
    return max(0, round((moment - timezone.now()).total_seconds()))


@register.filter
def trim(text: str) -> str:
    return str(text).strip()
