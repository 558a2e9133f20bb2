"""ConversationOutput's representation written out without its serializer.

The inbox list and a conversation's detail answer through helpdesk.api_output's
`written_answer` (orjson) when the request negotiated DRF's JSONRenderer plainly:
each conversation is written here field by field in ConversationOutput's order,
its times left as datetimes (orjson writes them as DRF does while `utc_output()`
holds), the rest as DRF gives them. A value that is not of the kind this copy
assumes (a time not in datetime.UTC, a float orjson writes otherwise, an id DRF
turns into a string) makes it answer None: the caller then takes
ConversationOutput. tests/helpdesk/test_list_output.py holds both readers to
ConversationOutput's bytes.

Two readers, one writer (`_written`): `written_rows` reads model instances (a
conversation's detail, later pages of the list, filters that are not compiled);
`written_page` reads the compiled first page's values
(helpdesk.compiled.Fetched) by position, with no model instance made: building
the page's 26 conversations with their brand, account, assignee and contact was
about two thirds of the list's own CPU. `sla_state` and `User.public_name` read
the values through small stand-ins that hold only what they read (`_Clock`,
`_Person`), so either raises AttributeError, loudly, if it starts to read more.
"""

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

from django.utils import timezone
from rest_framework.settings import api_settings

from helpdesk.api_output import orjson_float, utc_output
from helpdesk.compiled import Fetched
from helpdesk.models import Conversation
from helpdesk.services.breaches import sla_state
from tenants.models import User

# What one written conversation is made of, in the order `_written` reads it:
# the names of the compiled page's columns (helpdesk.compiled.Fetched.columns;
# the list's LIST_COLUMNS load them all). The times come last.
SOURCES = (
    "id",
    "brand_id",
    "brand__id",
    "brand__name",
    "brand__public_reply_limit",
    "social_account_id",
    "platform",
    "origin",
    "status",
    "channel_state",
    "awaiting_private",
    "public_reply_count",
    "priority",
    "sentiment",
    "language",
    "assignee__id",
    "assignee__display_name",
    "assignee__first_name",
    "assignee__email",
    "contact_id",
    "contact__display_name",
    "tag_names",
    "preview",
    "sla_kind",
    "sla_lane",
    "sla_run_started_at",
    "engagement_total",
    "engagement_per_hour",
    "follower_band",
    "no_reply_reason",
    "sla_due_at",
    "sla_due_soon_at",
    "sla_breached_at",
    "resolution_due_at",
    "queue_at",
    "engagement_read_at",
    "spreading_since",
    "no_reply_at",
    "first_response_at",
    "last_customer_message_at",
    "last_activity_at",
    "snoozed_until",
    "resolved_at",
    "created_at",
)
_TIMES = SOURCES.index("sla_due_at")
# The property's own code, given a _Person.
_public_name: Callable[[Any], str] = cast(Any, User.__dict__["public_name"]).fget


class _Clock:
    """The fields of a conversation that `sla_state` reads."""

    __slots__ = (
        "resolution_due_at",
        "sla_breached_at",
        "sla_due_at",
        "sla_due_soon_at",
        "sla_kind",
        "sla_run_started_at",
        "status",
    )
    resolution_due_at: datetime | None
    sla_breached_at: datetime | None
    sla_due_at: datetime | None
    sla_due_soon_at: datetime | None
    sla_kind: str
    sla_run_started_at: datetime | None
    status: str


class _Person:
    """The fields of a user that `User.public_name` reads."""

    __slots__ = ("display_name", "email", "first_name")
    display_name: str
    email: str
    first_name: str


def writes_plainly() -> bool:
    """Whether the written-out copy can hold now: DRF writes times in UTC as
    orjson does, and ids as numbers."""
    return utc_output() and not api_settings.COERCE_BIGINT_TO_STRING


def written_rows(
    conversations: Iterable[Conversation], tags: dict[int, list[str]]
) -> list[dict[str, Any]] | None:
    """ConversationOutput's representation of each conversation (its tag names
    loaded as `tag_names`, or in `tags` by id), or None (see the module)."""
    if not writes_plainly():
        return None
    return _written_all(_values_of(c, tags) for c in conversations)


def written_page(page: Fetched[Conversation]) -> list[dict[str, Any]] | None:
    """ConversationOutput's representation of the compiled page's rows, read
    from their values (no instance made), or None (see the module; also when
    the page lacks a column of SOURCES)."""
    columns = page.columns
    if not writes_plainly() or not all(name in columns for name in SOURCES):
        return None
    get = itemgetter(*(columns[name] for name in SOURCES))
    return _written_all(map(get, page.rows))


def _values_of(c: Conversation, tags: dict[int, list[str]]) -> tuple[Any, ...]:
    brand = c.brand
    assignee = c.assignee
    loaded: list[str] | None = getattr(c, "tag_names", None)
    person = (
        (None, None, None, None)
        if assignee is None
        else (assignee.id, assignee.display_name, assignee.first_name, assignee.email)
    )
    return (
        c.id,
        c.brand_id,
        brand.pk,
        brand.name,
        brand.public_reply_limit,
        c.social_account_id,
        c.platform,
        c.origin,
        c.status,
        c.channel_state,
        c.awaiting_private,
        c.public_reply_count,
        c.priority,
        c.sentiment,
        c.language,
        *person,
        c.contact_id,
        c.contact.display_name,
        loaded if loaded is not None else tags.get(c.pk, []),
        c.preview,
        c.sla_kind,
        c.sla_lane,
        c.sla_run_started_at,
        c.engagement_total,
        c.engagement_per_hour,
        c.follower_band,
        c.no_reply_reason,
        c.sla_due_at,
        c.sla_due_soon_at,
        c.sla_breached_at,
        c.resolution_due_at,
        c.queue_at,
        c.engagement_read_at,
        c.spreading_since,
        c.no_reply_at,
        c.first_response_at,
        c.last_customer_message_at,
        c.last_activity_at,
        c.snoozed_until,
        c.resolved_at,
        c.created_at,
    )


def _written_all(
    values: Iterable[Sequence[Any]],
) -> list[dict[str, Any]] | None:
    now = timezone.now()
    clock, person = _Clock(), _Person()
    rows = []
    for row in values:
        written = _written(row, now, clock, person)
        if written is None:
            return None
        rows.append(written)
    return rows


def _written(
    values: Sequence[Any], now: datetime, clock: _Clock, person: _Person
) -> dict[str, Any] | None:
    """One conversation's representation from its SOURCES values, or None."""
    for value in values[_TIMES:]:
        if value is not None and (
            type(value) is not datetime or value.tzinfo is not UTC
        ):
            return None
    (
        pk,
        brand_id,
        brand_key,
        brand_name,
        reply_limit,
        account_id,
        platform,
        origin,
        status,
        channel_state,
        awaiting_private,
        public_reply_count,
        priority,
        sentiment,
        language,
        assignee_id,
        person.display_name,
        person.first_name,
        person.email,
        contact_id,
        contact_name,
        tag_names,
        preview,
        clock.sla_kind,
        sla_lane,
        clock.sla_run_started_at,
        engagement_total,
        per_hour,
        follower_band,
        no_reply_reason,
        *times,
    ) = values
    if brand_key is None or type(per_hour) is not float or not orjson_float(per_hour):
        # No brand: the model's reader raises as it always did.
        return None
    clock.status = status
    (
        clock.sla_due_at,
        clock.sla_due_soon_at,
        clock.sla_breached_at,
        clock.resolution_due_at,
    ) = times[:4]
    return {
        "id": pk,
        "brand": {"id": brand_id, "name": brand_name},
        "account_id": account_id,
        "platform": platform,
        "origin": origin,
        "status": status,
        "channel_state": channel_state,
        "awaiting_private": awaiting_private,
        "public_reply_count": public_reply_count,
        "public_reply_limit": reply_limit,
        "priority": priority,
        "sentiment": sentiment,
        "language": language,
        "assignee": None
        if assignee_id is None
        else {"id": assignee_id, "name": _public_name(person)},
        "contact": {"id": contact_id, "name": contact_name},
        "tags": tag_names,
        "preview": preview,
        "sla_state": sla_state(cast(Conversation, clock), now),
        "sla_kind": clock.sla_kind,
        "sla_lane": sla_lane,
        "sla_due_at": times[0],
        "sla_due_soon_at": times[1],
        "sla_breached_at": times[2],
        "resolution_due_at": times[3],
        "queue_at": times[4],
        "engagement_total": engagement_total,
        "engagement_per_hour": per_hour,
        "engagement_read_at": times[5],
        "spreading_since": times[6],
        "follower_band": follower_band,
        "no_reply_reason": no_reply_reason,
        "no_reply_at": times[7],
        "first_response_at": times[8],
        "last_customer_message_at": times[9],
        "last_activity_at": times[10],
        "snoozed_until": times[11],
        "resolved_at": times[12],
        "created_at": times[13],
    }
