"""The API channel: open one for a brand, and record what a custom source pushes.

An API channel is a `SocialAccount` on the `api` platform. It has no webhook or
poller and no platform tokens: the workspace's API token authenticates the source,
and replies reach it through the outbound webhooks (see social/connectors/api.py).
"""

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import JSONField
from django.db.models.expressions import RawSQL
from django.http import Http404
from django.utils import timezone

from helpdesk.compiled import CompiledQuery
from helpdesk.services import inbound, sla
from helpdesk.services.inbound import InboundResult, Lookup, record_inbound_message
from social.connectors.base import Author, InboundItem
from social.models import Platform, SocialAccount
from tenants.access import require_role
from tenants.base import _require_tenant_id
from tenants.models import Brand, Membership
from tenants.opening import Converter, _Part, model_part
from tenants.services import record_audit


def create_api_channel(
    membership: Membership, *, brand: Brand, name: str
) -> SocialAccount:
    """Open an API channel for `brand` (admins). Audited."""
    require_role(membership, Membership.Role.ADMIN)
    with transaction.atomic():
        account = SocialAccount.objects.create(
            tenant=membership.tenant,
            brand=brand,
            platform=Platform.API,
            external_id=f"api-{secrets.token_hex(8)}",
            handle=name.strip()[:128] or "API channel",
            display_name=name.strip()[:200],
        )
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="api_channel.created",
            obj=account,
            data={"brand_id": brand.pk},
        )
    return account


_API_CHANNEL = CompiledQuery(
    lambda pk: (
        SocialAccount.objects.select_related("tenant", "brand")
        .filter(pk=pk, platform=Platform.API)
        .annotate(**sla.brand_time_annotations("social_socialaccount"))
        .order_by("pk")[:1]
    ),
    [int],
)


def access_api_channel(membership: Membership, account_id: int) -> SocialAccount:
    """The API channel with this id in the member's workspace, or 404.

    One query: the account with its brand, and on PostgreSQL the brand's SLA
    policy and holidays (helpdesk.services.sla.preload). Its tenant is the
    member's (the workspace the request opened). On PostgreSQL the row is read
    with a plain cursor and made into instances as tenants.opening makes the
    request's rows (`_read_channel`); elsewhere through a compiled queryset
    (helpdesk.compiled).
    """
    return _access(membership, account_id, None)[0]


def access_api_channel_for_push(
    membership: Membership, account_id: int, *, external_id: str, author_id: str
) -> tuple[SocialAccount, Lookup | None]:
    """access_api_channel, and on PostgreSQL the push's replay and author lookup
    (helpdesk.services.inbound.Lookup of the message `external_id` by the author
    `author_id`) read in the same statement, for record_channel_message: one
    statement less per push. None elsewhere."""
    return _access(membership, account_id, (external_id, author_id))


def _access(
    membership: Membership, account_id: int, push: tuple[str, str] | None
) -> tuple[SocialAccount, Lookup | None]:
    lookup = None
    if connection.vendor == "postgresql":
        account, lookup = _read_channel(int(account_id), push)
    else:
        account = _API_CHANNEL.first(int(account_id))
    if account is None:
        raise Http404("No such API channel")
    if account.tenant_id != membership.tenant_id:
        raise Http404("No such API channel")
    if connection.vendor == "postgresql":
        SocialAccount.tenant.field.set_cached_value(account, membership.tenant)
    sla.preload_annotated(account, account.brand)
    return account, lookup


@cache
def _channel_statement(
    using: str, push: bool = False
) -> tuple[str, Any, Any, list[tuple[str, RawSQL, list[Any]]]]:
    """The account, its brand and the SLA annotations in one SELECT (`push`: and
    a push's lookup, inbound.LOOKUP_SELECT, last); how to make the two
    instances; each annotation's name and converters."""
    ops = connection.ops
    account_table = SocialAccount._meta.db_table
    account, brand = ops.quote_name(account_table), ops.quote_name(Brand._meta.db_table)
    columns = [
        f"{account}.{ops.quote_name(str(field.column))}"
        for field in SocialAccount._meta.concrete_fields
    ] + [
        f"{brand}.{ops.quote_name(str(field.column))}"
        for field in Brand._meta.concrete_fields
    ]
    extras: list[tuple[str, RawSQL, list[Any]]] = []
    for name, annotation in sla.brand_time_annotations(account_table).items():
        assert isinstance(annotation, RawSQL)  # noqa: S101 - sla's RawSQL
        assert isinstance(annotation.output_field, JSONField)  # noqa: S101
        assert not annotation.params  # noqa: S101 - no parameters
        columns.append(annotation.sql)
        converters = ops.get_db_converters(annotation)
        converters += annotation.get_db_converters(connection)
        extras.append((name, annotation, _json_loaded(converters)))
    joins = ""
    if push:
        columns.append(inbound.LOOKUP_SELECT)
        joins = f" {inbound.LOOKUP_JOIN}"
    # The queryset's statement without the tenant's join (the member's tenant
    # is the request's), its ORDER BY and LIMIT (one row by key).
    sql = (
        f"SELECT {', '.join(columns)} FROM {account}"  # noqa: S608
        f' INNER JOIN {brand} ON ({account}."brand_id" = {brand}."id"){joins}'
        f' WHERE ({account}."tenant_id" = %s AND {account}."id" = %s'
        f' AND {account}."platform" = %s)'
    )
    return (
        sql,
        _json_part(model_part(SocialAccount, using)),
        _json_part(model_part(Brand, using)),
        extras,
    )


def _json_value(from_db_value: Converter) -> Converter:
    """JSONField.from_db_value of a field without its own decoder, with its
    text parsed by orjson (the brand's three JSON columns and the two SLA
    annotations). Text with a run of 19 digits (an integer orjson may read as a
    float: beyond 64 bits, or below -2**63), what orjson refuses (a lone
    surrogate escape, NaN, nesting deeper than 1024, invalid JSON) and any value
    that is not text go to the field's own converter, so every value comes out
    as json.loads makes it."""

    def convert(value: Any, expression: Any, connection: Any) -> Any:
        if type(value) is str and _LONG_RUN not in _digits_as_zeros(value):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return from_db_value(value, expression, connection)

    return convert


# Where an integer of 19 or more digits may be (10**18 - 1 is the longest orjson
# and json.loads always read alike): a run of 19 ASCII digits, found in the
# text's UTF-8 bytes with every digit made "0" (under a microsecond for the
# brand's business hours; a regular expression took longer than orjson).
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def _digits_as_zeros(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").translate(_ZEROS)


def _json_loaded(converters: list[Any]) -> list[Any]:
    """`converters` with a plain JSONField's from_db_value made `_json_value`."""
    loaded = []
    for convert in converters:
        field = getattr(convert, "__self__", None)
        if (
            isinstance(field, JSONField)
            and field.decoder is None
            and getattr(convert, "__func__", None) is JSONField.from_db_value
        ):
            convert = _json_value(convert)
        loaded.append(convert)
    return loaded


def _json_part(part: _Part) -> _Part:
    """model_part's `part` with its plain JSON columns read by `_json_value`."""
    return replace(
        part,
        converters=tuple(
            (index, tuple(_json_loaded(list(converters))), expression)
            for index, converters, expression in part.converters
        ),
    )


def _read_channel(
    account_id: int, push: tuple[str, str] | None = None
) -> tuple[SocialAccount | None, Lookup | None]:
    """What `_API_CHANNEL.first(account_id)` gives on PostgreSQL (the account,
    its brand and the SLA annotations), without Django's row machinery (its
    iterable, related populators and converter lookups per call: about 0.2 ms
    of a create's CPU). The open tenant's filter is the manager's. `push`
    (the message's and the author's external ids): with the push's Lookup."""
    tenant_id = _require_tenant_id()
    using = connection.alias
    sql, account_part, brand_part, extras = _channel_statement(using, push is not None)
    params: list[Any] = [tenant_id, account_id, Platform.API]
    if push is not None:
        selected, joined = inbound.lookup_params(tenant_id, Platform.API, *push)
        params = [*selected, *joined, *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None, None
    using = connection.alias
    split = len(account_part.names)
    end = split + len(brand_part.names)
    account: Any = account_part.build(row[:split], using)
    brand = brand_part.build(row[split:end], using)
    last = end + len(extras)
    for (name, annotation, converters), value in zip(
        extras, row[end:last], strict=True
    ):
        for convert in converters:
            value = convert(value, annotation, connection)
        setattr(account, name, value)
    SocialAccount.brand.field.set_cached_value(account, brand)
    lookup = None
    if push is not None:
        lookup = inbound.read_lookup(tenant_id, Platform.API, *push, row[last:])
    return account, lookup


@dataclass(frozen=True)
class ChannelMessage:
    external_id: str
    text: str
    author_id: str
    author_handle: str = ""
    author_name: str = ""
    author_followers: int = 0
    visibility: str = "private"
    thread_id: str = ""
    created_at: datetime | None = None
    url: str = ""


def record_channel_message(
    membership: Membership,
    *,
    account: SocialAccount,
    message: ChannelMessage,
    lookup: Lookup | None = None,
) -> InboundResult:
    """Record one message pushed by the source; the same external id again is a no-op.

    Agents and above (the token's member). Public messages thread by `thread_id`
    (default: their own id); private ones join the author's private conversation.
    Returns the recorded message and whether it was new. `lookup`: the push's
    lookup read with the channel (access_api_channel_for_push).
    """
    require_role(membership, Membership.Role.AGENT)
    public = message.visibility == "public"
    item = InboundItem(
        platform=Platform.API,
        external_id=message.external_id,
        author=Author(
            external_id=message.author_id,
            handle=message.author_handle,
            display_name=message.author_name,
            followers=message.author_followers,
        ),
        text=message.text,
        created_at=message.created_at or timezone.now(),
        visibility=message.visibility,
        kind="mention" if public else "direct_message",
        thread_ref=message.thread_id
        or (message.external_id if public else message.author_id),
        mentions_account=public,
        url=message.url,
    )
    return record_inbound_message(account, item, lookup=lookup)
