"""Fetch what a request needs to open its workspace, in one statement on PostgreSQL.

A request to `/t/<slug>/` or `/api/v1/t/<slug>/` needs the workspace, the setting
its RLS policies read, and the caller's membership (with a token: the token, its
membership and user). On PostgreSQL one call of a function from migration tenants
0005 does all of it as the first statement of the request's transaction:
`earshot_open_api` or `earshot_open_member` finds the workspace, applies
`app.tenant_id` with `SET LOCAL` (it lasts until the transaction ends) and then
reads the credentials under RLS. (Migration 0010 replaced `earshot_open_api`'s
`last_used_at` touch with one that skips a token row another request is touching,
instead of waiting for that request's COMMIT; 0011 applies the setting with
`set_config('app.tenant_id', id, true)`, what SET LOCAL runs, instead of parsing an
EXECUTEd `SET LOCAL` on every call.) The rows come back as whole-row values,
expanded here field by field from each model's own fields, so a column added by a
later migration is read without changing the functions.

On SQLite (the demo) ordinary queries give the same results: no RLS, so each one is
filtered by the workspace's id explicitly.

These functions only fetch; the gates (`tenants.access.open_tenant_for_member`,
`tenants.api_tokens.open_tenant_with_token`) decide. Call them through
`tenants.context.open_tenant_context`, which runs them inside the transaction.

A token request may carry a `Lateral`: a read of the view's own (the reply's row
lock, helpdesk.access) that rides in the same statement, one round trip less. It
is joined LATERAL to the function's row, so PostgreSQL runs it after the function
has returned, under the setting the function applied (its RLS quals read
`current_setting` when the scan starts, not when the statement does), and only
when the opening lets the request reach its view with the route's role and scope
(`_gate`): otherwise the workspace's id it is given is NULL and it reads nothing.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from django.db import connections
from django.db.models import Model, Q
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from tenants.models import ApiToken, Membership, Tenant, User
from tenants.plain_rows import builds_plainly

Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True, slots=True)
class OpenedTenant:
    """The workspace a request opened and who opened it (`token` for API tokens)."""

    tenant: Tenant
    membership: Membership
    token: ApiToken | None = None
    # What a Lateral's `make` gave, when its read ran in the opening statement.
    along: Any = None


@dataclass(frozen=True, slots=True)
class Lateral:
    """A read that rides in a token request's opening statement (PostgreSQL).

    `parts`: a SELECT split where the opened workspace's id goes (every place:
    its tenant filters), with `%s` for `params`; it runs under the workspace's
    RLS like any read after the opening. `columns`: how many it returns.
    `role` and `scope`: what the route needs (the view checks them again);
    the read runs only when the member holds the role, the token the scope,
    the workspace is active and the user too. `make(values)`: the result from
    its columns (all None when it found no row), kept as `OpenedTenant.along`.
    """

    parts: tuple[str, ...]
    params: Sequence[Any]
    columns: int
    role: str
    scope: str
    make: Callable[[Sequence[Any]], Any]


@dataclass(frozen=True, slots=True)
class _Part:
    model: type[Model]
    names: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Converter, ...], Any], ...]
    plain: bool  # `Model.__init__` would only store the values (tenants.plain_rows)

    def build(self, values: Sequence[Any], using: str) -> Model:
        row = list(values)
        if self.converters:
            connection = connections[using]
            for index, converters, expression in self.converters:
                for convert in converters:
                    row[index] = convert(row[index], expression, connection)
        if not self.plain or pre_init.receivers or post_init.receivers:
            return self.model.from_db(using, self.names, row)
        # What from_db leaves with every column given, without `Model.__init__`
        # (about 30 us a model on the bench machine, four per token request).
        instance = _new(self.model)
        state = ModelState()
        state.adding = False
        state.db = using
        stored = instance.__dict__
        stored["_state"] = state
        stored.update(zip(self.names, row, strict=True))
        return instance


_new = object.__new__


def model_part(model: type[Model], using: str) -> "_Part":
    """How to make `model`'s instance from its concrete columns, in field order
    (each column's database converters, then the plain or from_db path):
    `part.build(values, using)`."""
    connection = connections[using]
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        expression = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(
            expression
        ) + expression.get_db_converters(connection)
        if found:
            converters.append((index, tuple(found), expression))
    names = tuple(field.attname for field in fields)
    return _Part(model, names, tuple(converters), builds_plainly(model))


@cache
def _statement(
    function: str,
    arguments: int,
    parts: tuple[tuple[str, type[Model]], ...],
    using: str,
) -> tuple[str, tuple[_Part, ...]]:
    """The SELECT that calls `function` and lists every field of each part."""
    quote = connections[using].ops.quote_name
    columns: list[str] = []
    built: list[_Part] = []
    for column, model in parts:
        fields = model._meta.concrete_fields
        columns.extend(f"(r.{column}).{quote(str(field.column))}" for field in fields)
        built.append(model_part(model, using))
    placeholders = ", ".join(["%s"] * arguments)
    # Names from this module's constants and the models' own columns, quoted; the
    # values are parameters.
    sql = f"SELECT {', '.join(columns)} FROM {function}({placeholders}) r"  # noqa: S608
    return sql, tuple(built)


def _call(
    function: str,
    arguments: list[Any],
    parts: tuple[tuple[str, type[Model]], ...],
    using: str,
    lateral: Lateral | None = None,
) -> tuple[list[Model], Any] | None:
    """The parts' instances, and what `lateral` made when its read ran (else
    None); None when the function returned no row."""
    sql, built = _statement(function, len(arguments), parts, using)
    params = arguments
    if lateral is not None:
        sql = _with_lateral(sql, lateral.parts, lateral.role, lateral.scope, using)
        params = [*arguments, *lateral.params]
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    instances, start = [], 0
    for part in built:
        end = start + len(part.names)
        instances.append(part.build(row[start:end], using))
        start = end
    along = None
    if lateral is not None and row[start]:
        along = lateral.make(row[start + 1 : start + 1 + lateral.columns])
    return instances, along


_LITERAL = re.compile(r"[a-z_]+")


def _literals(values: Sequence[str]) -> str:
    # The models' choice values, never input; checked all the same.
    if not all(_LITERAL.fullmatch(value) for value in values):
        raise ValueError(f"not a plain choice value: {values!r}")
    return ", ".join(f"'{value}'" for value in values)


@cache
def _gate(role: str, scope: str, using: str) -> str:
    """When a request opened by `earshot_open_api`'s row `r` reaches a view that
    needs `role` and `scope`: what open_tenant_with_token, the suspended check
    of TenantMiddleware.api and TenantScopedApi.initial require, in SQL."""
    quote = connections[using].ops.quote_name

    def column(row: str, model: type[Model], name: str) -> str:
        field = _relation(model, name)
        return f"(r.{row}).{quote(str(field.column))}"

    roles = [
        name for name, rank in Membership.RANK.items() if rank >= Membership.RANK[role]
    ]
    scopes = [
        name for name, rank in ApiToken.RANK.items() if rank >= ApiToken.RANK[scope]
    ]
    active = _literals([Tenant.Status.ACTIVE])
    return (
        f"({column('tenant_row', Tenant, 'status')} = {active}"
        f" AND {column('user_row', User, 'is_active')}"
        f" AND {column('membership_row', Membership, 'role')} IN ({_literals(roles)})"
        f" AND {column('token_row', ApiToken, 'scope')} IN ({_literals(scopes)}))"
    )


@cache
def _with_lateral(
    sql: str, parts: tuple[str, ...], role: str, scope: str, using: str
) -> str:
    """`sql` (the opening's SELECT) with the gate's verdict and the lateral read's
    columns after the function's. The read is given the workspace's id only
    when the gate is open: with NULL its tenant filters match no row, so it
    locks and reads nothing."""
    gate = _gate(role, scope, using)
    key = connections[using].ops.quote_name(str(_relation(Tenant, "id").column))
    opened_id = f"CASE WHEN {gate} THEN (r.tenant_row).{key} END"
    select, _, function = sql.partition(" FROM ")
    # Every name comes from this module or the models; values are parameters.
    return (
        f"{select}, {gate}, c.* FROM {function}"
        f" LEFT JOIN LATERAL ({opened_id.join(parts)}) c ON true"
    )


@dataclass(frozen=True, slots=True)
class LateralRoute:
    """A route whose token requests carry a Lateral: `method` and `path` (a
    pattern of the path after `/api/vN/t/<slug>/`, the whole of it, as the
    URLconf routes it to `view_name`); `lateral(kwargs, role, scope)` makes the
    read from the pattern's groups and what the view needs."""

    method: str
    path: re.Pattern[str]
    view_name: str
    lateral: Callable[[dict[str, str], str, str], Lateral]


_ROUTES: list[LateralRoute] = []


def add_lateral_route(
    method: str,
    path: str,
    view_name: str,
    lateral: Callable[[dict[str, str], str, str], Lateral],
) -> None:
    """Let token requests to this route read `lateral` in their opening (see
    LateralRoute); the module that owns the route's read calls it on import."""
    _ROUTES.append(LateralRoute(method, re.compile(path), view_name, lateral))


def lateral_route(method: str, path: str) -> tuple[LateralRoute, dict[str, str]] | None:
    """The route `path` (after `/api/vN/t/<slug>/`) takes with `method`, and its
    groups, when that route carries a Lateral."""
    for route in _ROUTES:
        if route.method == method and (found := route.path.fullmatch(path)):
            return route, found.groupdict()
    return None


@cache
def _relation(model: type[Model], field: str) -> Any:
    """`model`'s relation `field` (found once, not on every request)."""
    return model._meta.get_field(field)


def _link(instance: Model, field: str, target: Model) -> None:
    """Cache `target` as `instance.<field>` (as select_related does; no checks)."""
    _relation(type(instance), field).set_cached_value(instance, target)


API_PARTS = (
    ("tenant_row", Tenant),
    ("token_row", ApiToken),
    ("membership_row", Membership),
    ("user_row", User),
)
MEMBER_PARTS = (("tenant_row", Tenant), ("membership_row", Membership))


def fetch_by_token(
    tenant_slug: str,
    digest: str,
    *,
    used_at: datetime,
    stale_before: datetime,
    lateral: Lateral | None = None,
    using: str = "default",
) -> OpenedTenant | None:
    """The workspace, live token (by digest), membership and user, or None.

    Must run inside a transaction: on PostgreSQL it applies the workspace's
    setting for the rest of it. None when the slug, the digest or a live token of
    this workspace is unknown. Sets `last_used_at` to `used_at` when it is empty or
    older than `stale_before` (in the same statement on PostgreSQL). `lateral`
    rides in that statement on PostgreSQL (its result is `along`; elsewhere it
    is not run and `along` is None).
    """
    along = None
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("open a workspace only inside a transaction")
    if connection.vendor == "postgresql":
        called = _call(
            "earshot_open_api",
            [tenant_slug, digest, used_at, stale_before],
            API_PARTS,
            using,
            lateral,
        )
        if called is None:
            return None
        found, along = called
        tenant = cast(Tenant, found[0])
        token = cast(ApiToken, found[1])
        membership = cast(Membership, found[2])
        user = cast(User, found[3])
    else:
        tenant_or_none = Tenant.objects.using(using).filter(slug=tenant_slug).first()
        if tenant_or_none is None:
            return None
        tenant = tenant_or_none
        token_or_none = (
            ApiToken._base_manager.using(using)
            .select_related("membership__user")
            .filter(tenant_id=tenant.pk, digest=digest, revoked_at__isnull=True)
            .first()
        )
        if token_or_none is None:
            return None
        token = token_or_none
        if token.last_used_at is None or token.last_used_at < stale_before:
            # Stale again in the UPDATE itself, as on PostgreSQL (migration 0010).
            touched = (
                ApiToken._base_manager.using(using)
                .filter(tenant_id=tenant.pk, pk=token.pk)
                .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before))
                .update(last_used_at=used_at)
            )
            if touched:
                token.last_used_at = used_at
        membership, user = token.membership, token.membership.user
    _link(membership, "user", user)
    _link(membership, "tenant", tenant)
    _link(token, "membership", membership)
    _link(token, "tenant", tenant)
    return OpenedTenant(tenant=tenant, membership=membership, token=token, along=along)


def fetch_by_member(
    tenant_slug: str, user: User, *, using: str = "default"
) -> OpenedTenant | None:
    """The workspace and `user`'s membership of it, or None.

    Must run inside a transaction: on PostgreSQL it applies the workspace's
    setting for the rest of it. None when the slug is unknown or the user is not
    a member.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("open a workspace only inside a transaction")
    if connection.vendor == "postgresql":
        called = _call(
            "earshot_open_member", [tenant_slug, user.pk], MEMBER_PARTS, using
        )
        if called is None:
            return None
        found = called[0]
        tenant = cast(Tenant, found[0])
        membership = cast(Membership, found[1])
    else:
        tenant_or_none = Tenant.objects.using(using).filter(slug=tenant_slug).first()
        if tenant_or_none is None:
            return None
        tenant = tenant_or_none
        membership_or_none = (
            Membership._base_manager.using(using)
            .filter(tenant_id=tenant.pk, user_id=user.pk)
            .first()
        )
        if membership_or_none is None:
            return None
        membership = membership_or_none
    _link(membership, "user", user)
    _link(membership, "tenant", tenant)
    return OpenedTenant(tenant=tenant, membership=membership)
