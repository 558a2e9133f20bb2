"""What the settings pages show: brand settings as form rows, the brand's online
state in words, listening rules and saved replies grouped by brand.

Display only: the pages write through the REST API, whose services decide.
"""

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from helpdesk.models import Message, SavedReply
from helpdesk.services.replies import with_signature
from social.models import ListeningRule, Platform
from tenants.brand_rules import BRAND_LIMITS, SLA_TARGET_LIMITS, WEEKDAYS
from tenants.hours import availability
from tenants.models import Brand, User
from tenants.sla import SlaPolicyView, brand_holidays, sla_policy_view

DAY_NAMES = dict(
    zip(
        WEEKDAYS,
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        strict=True,
    )
)
# The reply the signature previews are appended to.
SAMPLE_REPLY = "Thanks for your patience, your bag is on its way."
# The customer the saved-reply preview pretends to answer.
SAMPLE_CUSTOMER = "Maria"
# The time zone regions offered (the rest of the tz database is aliases).
REGIONS = (
    "Africa",
    "America",
    "Antarctica",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
)
# Platforms listening rules can watch: the API channel has no public posts.
LISTENED_PLATFORMS = [(v, label) for v, label in Platform.choices if v != "api"]


@dataclass
class BrandState:
    online: bool
    headline: str
    detail: str
    local_time: str


@dataclass
class DayRow:
    key: str
    label: str
    intervals: list[tuple[str, str]]

    @property
    def is_open(self) -> bool:
        return bool(self.intervals)


@dataclass
class SignatureRow:
    key: str
    label: str
    template: str
    signature: str  # what a public reply gets appended (after SAMPLE_REPLY)
    inherits: bool


@dataclass
class Group:
    """A section of a settings list: a brand (None: shared by all) and its rows."""

    brand: Brand | None
    items: list[Any] = field(default_factory=list)


def brand_state(brand: Brand, at: datetime) -> BrandState:
    """ "Online"/"Offline" now, and when that changes, in the brand's time zone."""
    state = availability(brand, at)
    local = at.astimezone(zoneinfo.ZoneInfo(brand.timezone))
    change = state.next_change
    if change is None:
        detail = "around the clock" if state.online else "no business hours set"
    else:
        verb = "until" if state.online else "back"
        detail = f"{verb} {_when(change, local)}"
    return BrandState(
        online=state.online,
        headline="Online" if state.online else "Offline",
        detail=detail,
        local_time=f"{local:%H:%M} in {brand.timezone}",
    )


def _when(moment: datetime, local_now: datetime) -> str:
    days = (moment.date() - local_now.date()).days
    clock = f"{moment:%H:%M}"
    if days == 0:
        return clock
    if days == 1 and clock == "00:00":
        return "midnight"
    if days == 1:
        return f"tomorrow {clock}"
    if days < 7:
        return f"{moment:%A} {clock}"
    return f"{moment:%a %d %b} {clock}"


def timezone_groups(current: str) -> list[tuple[str, list[str]]]:
    """IANA zone names by region for a select, with UTC and `current` included."""
    names = zoneinfo.available_timezones()
    groups = [
        (region, sorted(n for n in names if n.split("/")[0] == region))
        for region in REGIONS
    ]
    other = sorted({"UTC", current} - {n for _, zones in groups for n in zones})
    return [("Other", other), *groups]


def hours_rows(brand: Brand) -> list[DayRow]:
    """One row per weekday; a time input cannot show 24:00, so midnight is 00:00."""
    hours = brand.business_hours or {}
    return [
        DayRow(
            key=day,
            label=DAY_NAMES[day],
            intervals=[
                (start, "00:00" if end == "24:00" else end)
                for start, end in hours.get(day, [])
            ],
        )
        for day in WEEKDAYS
    ]


def signature_rows(brand: Brand, agent: User) -> list[SignatureRow]:
    """The default signature, then one per platform, each previewed as `agent`
    would send it (a platform without its own rule uses the default)."""
    rules = brand.signature_rules or {}
    keys = [("default", "Every platform"), *Platform.choices]
    return [
        SignatureRow(
            key=key,
            label=str(label),
            template=rules.get(key, ""),
            signature=with_signature(
                SAMPLE_REPLY,
                brand=brand,
                platform=key,
                agent=agent,
                visibility=Message.Visibility.PUBLIC,
            )[len(SAMPLE_REPLY) :],
            inherits=key != "default" and key not in rules,
        )
        for key, label in keys
    ]


def rules_by_brand(brands: list[Brand], rules: list[ListeningRule]) -> list[Group]:
    groups = {brand.pk: Group(brand) for brand in brands}
    for rule in rules:
        groups[rule.brand_id].items.append(rule)
    return list(groups.values())


def replies_by_brand(brands: list[Brand], replies: list[SavedReply]) -> list[Group]:
    """Shared replies first, then each brand's (empty groups left out)."""
    groups: dict[int | None, Group] = {None: Group(None)}
    groups.update({brand.pk: Group(brand) for brand in brands})
    for reply in replies:
        groups[reply.brand_id].items.append(reply)
    return [group for group in groups.values() if group.items]


# The SLA targets the brand page edits: field, label, help text.
SLA_FIELDS = (
    ("first_response_minutes", "First response", "Until the first answer."),
    (
        "next_response_minutes",
        "Next response",
        "Until the next answer after the customer writes again.",
    ),
    (
        "resolution_minutes",
        "Resolution",
        "Until the conversation is resolved. Leave empty for no target.",
    ),
    (
        "urgent_first_response_minutes",
        "Urgent: first response",
        "The urgent lane's first answer.",
    ),
    (
        "urgent_next_response_minutes",
        "Urgent: next response",
        "The urgent lane's next answer.",
    ),
)


def sla_fields(view: SlaPolicyView) -> list[tuple[str, str, str, int | None]]:
    """The target inputs with the values in force."""
    return [
        (name, label, help, getattr(view, name)) for name, label, help in SLA_FIELDS
    ]


def sla_source(view: SlaPolicyView) -> str:
    """Where the brand's targets come from, in words."""
    if view.own:
        return "This brand has its own targets."
    if view.source == "workspace":
        return "This brand uses the workspace's targets until you save its own."
    return "This brand uses the default targets until you save its own."


def brand_page(
    brand: Brand, viewer: User, *, can_manage: bool, at: datetime
) -> dict[str, Any]:
    """The brand settings page's context."""
    sla = sla_policy_view(brand)
    return {
        "brand": brand,
        "state": brand_state(brand, at),
        "timezones": timezone_groups(brand.timezone),
        "days": hours_rows(brand),
        "signatures": signature_rows(brand, viewer),
        "limits": {
            name: {"min": low, "max": high}
            for name, (low, high) in BRAND_LIMITS.items()
        },
        "sample_reply": SAMPLE_REPLY,
        "can_manage": can_manage,
        "sla": sla,
        "sla_source": sla_source(sla),
        "sla_fields": sla_fields(sla),
        "sla_limits": {"min": SLA_TARGET_LIMITS[0], "max": SLA_TARGET_LIMITS[1]},
        "holidays": list(brand_holidays(brand)),
    }
