"""The brand settings admins may change, and the checks they must pass.

Used by `tenants.services.add_brand` and `update_brand`, and for SLA policies by
`tenants.sla.update_sla_policy`; the API states the same bounds (`BRAND_LIMITS`,
`SLA_TARGET_LIMITS`) in its schema.
"""

import re
from string import Formatter
from typing import Any, TypedDict

from django.core.exceptions import ValidationError

from tenants.models import (
    SPREADING_THRESHOLD_MAX,
    SPREADING_THRESHOLD_MIN,
    Brand,
    validate_timezone,
)


class BrandSettings(TypedDict, total=False):
    """The brand settings `update_brand` changes; a key left out stays as it is."""

    name: str
    timezone: str
    business_hours: dict[str, list[list[str]]]
    public_reply_limit: int
    send_hold_seconds: int
    private_first_allowed: bool
    signature_rules: dict[str, str]
    auto_assign: bool
    pause_while_pending: bool
    queue_window_minutes: int
    spreading_threshold: int
    publish_badge: bool
    sla_digest: bool
    spike_alerts: bool
    spike_threshold: int
    spike_min_count: int


# Inclusive bounds of the numeric brand settings (the API schema states them too).
BRAND_LIMITS: dict[str, tuple[int, int]] = {
    "public_reply_limit": (1, 10),
    "send_hold_seconds": (0, 120),
    "queue_window_minutes": (0, 60),
    "spreading_threshold": (SPREADING_THRESHOLD_MIN, SPREADING_THRESHOLD_MAX),
    "spike_threshold": (2, 20),
    "spike_min_count": (1, 10000),
}
BRAND_FLAGS = frozenset(
    {
        "private_first_allowed",
        "auto_assign",
        "pause_while_pending",
        "publish_badge",
        "sla_digest",
        "spike_alerts",
    }
)
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
    if field in BRAND_FLAGS:
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


# --- SLA policies ---------------------------------------------------------------------


class SlaPolicySettings(TypedDict, total=False):
    """The SLA policy fields `update_sla_policy` changes; a key left out stays."""

    first_response_minutes: int
    next_response_minutes: int
    resolution_minutes: int | None
    urgent_first_response_minutes: int
    urgent_next_response_minutes: int
    urgent_on_negative: bool
    urgent_tags: list[str]


# A target is whole minutes of business time, from one minute to a week.
SLA_TARGET_LIMITS = (1, 7 * 24 * 60)
SLA_TARGETS = (
    "first_response_minutes",
    "next_response_minutes",
    "resolution_minutes",
    "urgent_first_response_minutes",
    "urgent_next_response_minutes",
)
# Only the resolution target may be switched off (null).
SLA_OPTIONAL_TARGETS = frozenset({"resolution_minutes"})
MAX_URGENT_TAGS = 20
TAG_NAME_MAX = 60  # helpdesk.Tag.name


def clean_sla_policy_settings(changes: SlaPolicySettings) -> dict[str, Any]:
    """The changes with tag names normalised as tags are (stripped, lower case,
    duplicates dropped, order kept). Raises ValidationError with a message per
    field when a value is out of bounds or of the wrong type."""
    values: dict[str, Any] = dict(changes)
    errors: dict[str, list[str]] = {}
    for field, value in values.items():
        message = _sla_setting_error(field, value)
        if message is not None:
            errors[field] = [message]
    if errors:
        raise ValidationError(errors)
    if "urgent_tags" in values:
        values["urgent_tags"] = list(
            dict.fromkeys(name.strip().lower() for name in values["urgent_tags"])
        )
    return values


def _sla_setting_error(field: str, value: Any) -> str | None:
    if field in SLA_TARGETS:
        if value is None and field in SLA_OPTIONAL_TARGETS:
            return None
        low, high = SLA_TARGET_LIMITS
        if isinstance(value, bool) or not isinstance(value, int):
            return "Give a whole number of minutes."
        if low <= value <= high:
            return None
        return f"Give a number of minutes from {low} to {high} (a week)."
    if field == "urgent_on_negative":
        return None if isinstance(value, bool) else "Give true or false."
    if field == "urgent_tags":
        return _urgent_tags_error(value)
    return f"{field} is not an SLA policy setting."


def _urgent_tags_error(tags: Any) -> str | None:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return 'Give a list of tag names, e.g. ["refund", "lost bag"].'
    if len(tags) > MAX_URGENT_TAGS:
        return f"Give at most {MAX_URGENT_TAGS} tags."
    for tag in tags:
        if not tag.strip():
            return "A tag name cannot be empty."
        if len(tag.strip()) > TAG_NAME_MAX:
            return f"A tag name has at most {TAG_NAME_MAX} characters."
    return None
