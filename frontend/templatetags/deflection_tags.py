"""The brand settings' deflection phrases (R15): one row per language, the brand's
own list or the defaults."""

from dataclasses import dataclass
from typing import Any

from django import template

from helpdesk.deflection import DEFAULT_PHRASES

register = template.Library()

LANGUAGE_NAMES = {"en": "English", "fr": "French", "es": "Spanish", "de": "German"}


@dataclass(frozen=True)
class PhraseRow:
    code: str
    label: str
    text: str
    default_text: str
    custom: bool


@register.simple_tag
def deflection_rows(brand: Any) -> list[PhraseRow]:
    """The languages with defaults, then the brand's other languages."""
    custom: dict[str, list[str]] = dict(brand.deflection_phrases or {})
    codes = list(DEFAULT_PHRASES) + sorted(set(custom) - set(DEFAULT_PHRASES))
    return [
        PhraseRow(
            code,
            f"{LANGUAGE_NAMES.get(code, code)} ({code})",
            "\n".join(custom.get(code, DEFAULT_PHRASES.get(code, []))),
            "\n".join(DEFAULT_PHRASES.get(code, [])),
            code in custom,
        )
        for code in codes
    ]
