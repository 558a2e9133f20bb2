"""Keyset (cursor) pagination of the inbox order for the REST API.

The inbox is in queue order (helpdesk.queue): the queue key at a time `now`, then
the due time, with answered conversations (no key) last, most recent activity
first, then id. The key depends on `now`, so the first page's `now` travels in the
cursor and every later page sorts by the same key: pages neither skip nor repeat
rows while the inbox changes under them (an offset would). The cursor is opaque to
clients (URL-safe base64 of JSON).
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from helpdesk.compiled import Fetched
from helpdesk.models import Conversation
from helpdesk.queue import KEY, RECENT, with_queue_order


@dataclass(frozen=True)
class Cursor:
    now: datetime  # the time the first page's queue key was taken at
    key: datetime | None
    due: datetime | None
    recent: datetime | None
    pk: int


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if timezone.is_naive(parsed):
        raise ValueError("naive time")
    return parsed


def _encode(
    now: datetime,
    key: datetime | None,
    due: datetime | None,
    recent: datetime | None,
    pk: int,
) -> str:
    data = [_iso(now), _iso(key), _iso(due), _iso(recent), pk]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decode(cursor: str) -> Cursor:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        now, key, due, recent, pk = json.loads(base64.urlsafe_b64decode(padded))
        taken_at = _time(now)
        if taken_at is None or (key is None) != (due is None):
            raise ValueError("incomplete cursor")
        if key is None and recent is None:
            raise ValueError("incomplete cursor")
        return Cursor(taken_at, _time(key), _time(due), _time(recent), int(pk))
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as error:
        raise ValidationError({"cursor": ["This cursor is not valid."]}) from error


def _after(cursor: Cursor) -> Q:
    if cursor.key is None:
        return Q(**{f"{KEY}__isnull": True}) & (
            Q(**{f"{RECENT}__lt": cursor.recent})
            | Q(**{RECENT: cursor.recent, "id__gt": cursor.pk})
        )
    same_key = Q(**{KEY: cursor.key})
    return (
        Q(**{f"{KEY}__gt": cursor.key})
        | (same_key & Q(sla_due_at__gt=cursor.due))
        | (same_key & Q(sla_due_at=cursor.due, id__gt=cursor.pk))
        | Q(**{f"{KEY}__isnull": True})
    )


def inbox_page(
    queryset: QuerySet[Conversation], request: Request, *, size: int
) -> tuple[list[Conversation], str | None]:
    """One page of `queryset` in queue order after `?cursor=`; the next page's URL.

    The first page takes the queue key at the current time; the cursor carries that
    time to the later pages. Raises ValidationError (field `cursor`) for a cursor
    this function did not write.
    """
    raw = request.query_params.get("cursor")
    cursor = _decode(raw) if raw else None
    now = cursor.now if cursor else timezone.now()
    ordered = with_queue_order(queryset, now)
    if cursor:
        ordered = ordered.filter(_after(cursor)).queue_after(cursor.key, cursor.recent)
    return page_of(list(ordered[: size + 1]), request, now=now, size=size)


def page_of(
    rows: list[Conversation], request: Request, *, now: datetime, size: int
) -> tuple[list[Conversation], str | None]:
    """The page from the first `size + 1` rows in queue order at `now` (the first
    page's time): its `size` rows and the next page's URL, or None at the end."""
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    last = rows[-1]
    cursor = _encode(
        now, getattr(last, KEY), last.sla_due_at, getattr(last, RECENT), last.pk
    )
    return rows, _next_url(request, cursor)


def values_page_of(
    fetched: Fetched[Conversation], request: Request, *, now: datetime, size: int
) -> tuple[Fetched[Conversation], str | None]:
    """`page_of` for the first `size + 1` rows as values (helpdesk.compiled.Fetched,
    with the queue order's annotations): the same rows and next URL."""
    if len(fetched.rows) <= size:
        return fetched, None
    page = fetched.head(size)
    columns = page.columns
    last = page.rows[-1]
    cursor = _encode(
        now,
        last[columns[KEY]],
        last[columns["sla_due_at"]],
        last[columns[RECENT]],
        last[columns["id"]],
    )
    return page, _next_url(request, cursor)


def _next_url(request: Request, cursor: str) -> str:
    return replace_query_param(request.build_absolute_uri(), "cursor", cursor)


def page_size(request: Request, *, default: int = 25, maximum: int = 100) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ValidationError(
            {"page_size": [f"Give a whole number from 1 to {maximum}."]}
        )
    return value


def paginated(results: Any, next_url: str | None) -> dict[str, Any]:
    return {"results": results, "next": next_url}
