"""Keyset (cursor) pagination of the inbox order for the REST API.

The inbox is ordered by queue time ascending with answered conversations (no queue
time) last, then most recent activity, then id. An offset would skip or repeat rows
while the inbox changes under it; a keyset cursor over those three columns does
not. The cursor is opaque to clients (URL-safe base64 of JSON).
"""

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from django.db.models import F, Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from helpdesk.models import Conversation

INBOX_ORDER = (
    F("queue_at").asc(nulls_last=True),
    F("last_activity_at").desc(),
    F("id").asc(),
)


def _encode(row: Conversation) -> str:
    data = [
        row.queue_at.isoformat() if row.queue_at else None,
        row.last_activity_at.isoformat(),
        row.pk,
    ]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime | None, datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        queue, activity, pk = json.loads(base64.urlsafe_b64decode(padded))
        return (
            datetime.fromisoformat(queue) if queue is not None else None,
            datetime.fromisoformat(activity),
            int(pk),
        )
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as error:
        raise ValidationError({"cursor": ["This cursor is not valid."]}) from error


def _after(queue: datetime | None, activity: datetime, pk: int) -> Q:
    same_queue_later = Q(last_activity_at__lt=activity) | Q(
        last_activity_at=activity, id__gt=pk
    )
    if queue is None:
        return Q(queue_at__isnull=True) & same_queue_later
    return (
        Q(queue_at__gt=queue)
        | (Q(queue_at=queue) & same_queue_later)
        | Q(queue_at__isnull=True)
    )


def inbox_page(
    queryset: QuerySet[Conversation], request: Request, *, size: int
) -> tuple[list[Conversation], str | None]:
    """One page of `queryset` in inbox order after `?cursor=`; the next page's URL."""
    cursor = request.query_params.get("cursor")
    ordered = queryset.order_by(*INBOX_ORDER)
    if cursor:
        ordered = ordered.filter(_after(*_decode(cursor)))
    rows = list(ordered[: size + 1])
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    url = replace_query_param(request.build_absolute_uri(), "cursor", _encode(rows[-1]))
    return rows, url


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
