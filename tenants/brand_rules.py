"""The brand settings admins may change, and the checks they must pass.

Used by `tenants.services.add_brand` and `update_brand`; the API states the same
bounds (`BRAND_LIMITS`) in its schema.
"""

import re
from string import Formatter
from typing import Any, TypedDict

from django.core.exceptions import ValidationError

from tenants.models import Brand, validate_timezone


class BrandSettings(TypedDict, total=False):
    """The brand settings `update_brand` changes; a key left out stays as it is."""

    name: str
    timezone: str
    business_hours: dict[str, list[list[str]]]
    public_reply_limit: int
    send_hold_seconds: int
    private_first_allowed: bool
    first_response_target_minutes: int
    signature_rules: dict[str, str]
    auto_assign: bool


# Inclusive bounds of the numeric brand settings (the API schema states them too).
BRAND_LIMITS: dict[str, tuple[int, int]] = {
    "public_reply_limit": (1, 10),
    "send_hold_seconds": (0, 120),
    "first_response_target_minutes": (1, 7 * 24 * 60),
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SIGNATURE_PLACEHOLDERS = frozenset({"initials", "first_name", "agent_name"})
_CLOCK = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_SIGNATURE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


def apply_brand_settings(brand: Brand, changes: BrandSettings) -> list[str]:
    """Set the given settings on `brand` (unsaved) once all are valid; the changed
    field names. Raises ValidationError (per field) without touching `brand`."""
    values: dict[str, Any] = dict(changes)
    if "name" in values:
        values["name"] = str(values["name"]).strip()
    errors = {
        field: [message]
        for field, value in values.items()
        if (message := _brand_setting_error(field, value)) is not None
    }
    if errors:
        raise ValidationError(errors)
    changed = [
        field for field, value in values.items() if getattr(brand, field) != value
    ]
    for field in changed:
        setattr(brand, field, values[field])
    return changed


def _brand_setting_error(field: str, value: Any) -> str | None:
    if field in BRAND_LIMITS:
        low, high = BRAND_LIMITS[field]
        if isinstance(value, bool) or not isinstance(value, int):
            return "Give a whole number."
        return None if low <= value <= high else f"Give a number from {low} to {high}."
    if field == "name":
        return None if value else "Give the brand a name."
    if field == "timezone":
        try:
            validate_timezone(str(value))
        except ValidationError as error:
            return " ".join(error.messages)
        return None
    if field == "business_hours":
        return _business_hours_error(value)
    if field == "signature_rules":
        return _signature_rules_error(value)
    if field in {"private_first_allowed", "auto_assign"}:
        return None if isinstance(value, bool) else "Give true or false."
    return f"{field} is not a brand setting."


def _business_hours_error(hours: Any) -> str | None:
    if not isinstance(hours, dict):
        return 'Give an object like {"mon": [["09:00", "17:00"]]}.'
    for day, intervals in hours.items():
        if day not in WEEKDAYS:
            return f"{day!r} is not a day; use {', '.join(WEEKDAYS)}."
        if not isinstance(intervals, list):
            return f"{day}: give a list of [start, end] pairs."
        previous_end = ""
        for interval in intervals:
            if (
                not isinstance(interval, list)
                or len(interval) != 2
                or not all(isinstance(t, str) and _CLOCK.match(t) for t in interval)
            ):
                return f'{day}: each interval is ["HH:MM", "HH:MM"] (24-hour clock).'
            start, end = interval
            if start >= end:
                return f"{day}: {start}-{end} ends before it starts."
            if start < previous_end:
                return f"{day}: intervals must be in order and not overlap."
            previous_end = end
    return None


def _signature_rules_error(rules: Any) -> str | None:
    if not isinstance(rules, dict):
        return (
            'Give an object like {"x": " ^{initials}", "default": " - {first_name}"}.'
        )
    for key, template in rules.items():
        if not _SIGNATURE_KEY.match(key):
            return f'{key!r} is not a platform name (or "default").'
        if not isinstance(template, str) or len(template) > 100:
            return f"{key}: give a text of at most 100 characters."
        try:
            fields = {
                name
                for _, name, _, _ in Formatter().parse(template)
                if name is not None
            }
        except ValueError:
            return f"{key}: unbalanced braces; write {{{{ and }}}} for literal ones."
        if not fields <= SIGNATURE_PLACEHOLDERS:
            return f"{key}: use only {{initials}}, {{first_name}} and {{agent_name}}."
    return None
