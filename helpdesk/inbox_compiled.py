"""The inbox's first page in compiled shapes (helpdesk.compiled).

Building `inbox_conversations(...)` in queue order and slicing it (the bounded
candidates of helpdesk.queue) and compiling the result cost about 60% of the
list request's CPU, and give the same SQL for the same filters every time. Here
each combination of filters (which are given, the status, the page size, the
role) is compiled once per connection, with the filter values, the time and the
tenant as parameters, and the page is read with the same statement
`helpdesk.pagination.inbox_page` would send for a first page.

Filters whose value the selector transforms before it reaches the SQL (the tag
name), filters this module does not know, and later pages (a cursor) are not
compiled: `first_page` returns None and the caller takes the ordinary path.
`first_page_values` reads the same statement's rows as values
(helpdesk.compiled.Fetched) for a reader that makes no model instance.
"""

import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework.request import Request

from helpdesk.compiled import CompiledQuery, Fetched
from helpdesk.models import Conversation
from helpdesk.pagination import inbox_page, page_of, values_page_of
from helpdesk.queue import with_queue_order
from helpdesk.selectors import inbox_conversations
from tenants.context import current_tenant_id
from tenants.models import Membership

# The filters of inbox_conversations whose values reach the SQL unchanged.
COMPILED_FILTERS: dict[str, type] = {
    "brand_id": int,
    "account_id": int,
    "platform": str,
    "origin": str,
    "sentiment": str,
    "assignee_id": int,
}

# A filter at its default is as if not given (status: given, a shape of its own).
_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(inbox_conversations).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}
_SHAPES: dict[tuple[Any, ...], CompiledQuery[Conversation] | None] = {}


def _stand_in(role: str) -> Membership:
    """A membership that is no one's: if the selector ever reads a member's id
    into the SQL, the two builds of the compile differ and it is refused."""
    marker = current_tenant_id() or 0
    return Membership(id=marker + 7, tenant_id=marker, user_id=marker + 11, role=role)


def _shape(key: tuple[Any, ...]) -> CompiledQuery[Conversation] | None:
    if key in _SHAPES:
        return _SHAPES[key]
    names, status, unassigned, size, role, columns = key

    def build(*values: Any) -> Any:
        filters = dict(zip(names, values[:-1], strict=True))
        now = values[-1]
        queryset = inbox_conversations(
            _stand_in(role), status=status, unassigned=unassigned, now=now, **filters
        )
        if columns is not None:
            queryset = queryset.only(*columns)
        return with_queue_order(queryset, now)[: size + 1]

    # The tenant in the text: a large tenant's page keeps a generic plan instead
    # of being planned again on every request (helpdesk.compiled).
    compiled = CompiledQuery(
        build,
        [*(COMPILED_FILTERS[name] for name in names), datetime],
        tenant_in_text=True,
    )
    _SHAPES[key] = compiled
    return compiled


def _compiled(
    membership: Membership,
    filters: Mapping[str, Any],
    size: int,
    columns: tuple[str, ...] | None,
) -> tuple[tuple[Any, ...], CompiledQuery[Conversation], list[Any]] | None:
    """This page's shape (its key, its compiled query and the values it is run
    with, the time last), or None when it is not compiled."""
    given = {
        name: value
        for name, value in filters.items()
        if name not in ("status", "unassigned") and value != _DEFAULTS.get(name)
    }
    if not set(given) <= set(COMPILED_FILTERS) or "now" in filters:
        return None
    names = tuple(sorted(given))
    status = filters.get("status", _DEFAULTS["status"])
    unassigned = bool(filters.get("unassigned", False))
    key = (names, status, unassigned, size, membership.role, columns)
    compiled = _shape(key)
    if compiled is None:
        return None
    return key, compiled, [given[name] for name in names]


def first_page(
    membership: Membership,
    *,
    filters: Mapping[str, Any],
    size: int,
    now: datetime,
    columns: tuple[str, ...] | None = None,
) -> list[Conversation] | None:
    """The first `size + 1` rows of `inbox_conversations(membership, **filters)`
    in queue order at `now`, as `inbox_page` reads them for a first page (with
    `columns`: `.only(*columns)` of it); None when this shape is not compiled
    (the caller builds the queryset)."""
    found = _compiled(membership, filters, size, columns)
    if found is None:
        return None
    key, compiled, values = found
    try:
        return compiled.rows(*values, now)
    except ValueError:
        # The selector's shape depends on something besides these values (its
        # code changed): never compile it, read it the ordinary way.
        _SHAPES[key] = None
        return None


def first_page_values(
    membership: Membership,
    *,
    filters: Mapping[str, Any],
    size: int,
    now: datetime,
    columns: tuple[str, ...] | None = None,
) -> Fetched[Conversation] | None:
    """`first_page(...)`'s rows before they become instances (the same
    statement; helpdesk.compiled.Fetched), or None when this shape is not
    compiled."""
    found = _compiled(membership, filters, size, columns)
    if found is None:
        return None
    key, compiled, values = found
    try:
        return compiled.fetch(*values, now)
    except ValueError:
        _SHAPES[key] = None
        return None


def read_inbox_page(
    membership: Membership,
    *,
    request: Request,
    size: int,
    columns: tuple[str, ...] | None = None,
    values: bool = False,
    **filters: Any,
) -> tuple[list[Conversation] | Fetched[Conversation], str | None]:
    """`inbox_page(inbox_conversations(membership, **filters), request, size=size)`:
    a first page in a compiled shape when there is one, any other the ordinary
    way. The same rows and next URL either way. With `columns`, the rows load only
    those (`QuerySet.only`; related ones as `brand__name`): the page's reader says
    what it reads, and any other column would cost a query per row. With
    `values`, a compiled first page comes as its rows' values
    (helpdesk.compiled.Fetched: `instances()` makes the rows of them); any
    other page as model instances."""
    if not request.query_params.get("cursor"):
        now = timezone.now()
        if values:
            fetched = first_page_values(
                membership, filters=filters, size=size, now=now, columns=columns
            )
            if fetched is not None:
                return values_page_of(fetched, request, now=now, size=size)
        else:
            rows = first_page(
                membership, filters=filters, size=size, now=now, columns=columns
            )
            if rows is not None:
                return page_of(rows, request, now=now, size=size)
    queryset = inbox_conversations(membership, **filters)
    if columns is not None:
        queryset = queryset.only(*columns)
    return inbox_page(queryset, request, size=size)
