"""helpdesk.compiled's `tenant_in_text`: the open tenant's id written into the
statement (so that PostgreSQL keeps a generic plan costed for that tenant),
with the same rows as the queryset in each tenant and every other value still
a parameter."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.db.models import F, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat
from rest_framework.test import APIClient

from helpdesk.compiled import _TENANT_TEXTS, CompiledQuery
from helpdesk.inbox_compiled import _SHAPES
from tenants.context import tenant_context
from tenants.exceptions import TenantContextMissing
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, token_client
from tests.factories import make_brand
from tests.helpdesk.conftest import make_account

pytestmark = pytest.mark.django_db


def _brands(name: str) -> Any:
    return (
        Brand.objects.select_related("tenant")
        .filter(name=name)
        # A percent sign in the text itself (escaped as %% beside parameters).
        .annotate(label=Concat(F("name"), Value("!")), share=RawSQL("'50%%'", ()))
        .order_by("id")
    )


WRITTEN = CompiledQuery(_brands, [str], tenant_in_text=True)


@contextmanager
def sent() -> Iterator[list[tuple[str, list[Any]]]]:
    statements: list[tuple[str, list[Any]]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield statements


def _shape(brand: Any) -> tuple[Any, ...]:
    return (
        brand.pk,
        brand.tenant_id,
        brand.name,
        brand.tenant.name,
        brand.label,
        brand.share,
    )


def test_rows_equal_the_querysets_with_the_tenant_in_the_text(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    for workspace in (tenant, other_tenant):
        make_brand(workspace, "Shared name")
    for workspace in (tenant, other_tenant, tenant):
        with tenant_context(workspace), sent() as statements:
            rows = WRITTEN.rows("Shared name")
            first = WRITTEN.first("Shared name")
            fetched = WRITTEN.fetch("Shared name").instances()
        with tenant_context(workspace):
            expected = list(_brands("Shared name"))
        assert [_shape(b) for b in rows] == [_shape(b) for b in expected]
        assert [_shape(b) for b in fetched] == [_shape(b) for b in expected]
        assert first is not None
        assert _shape(first) == _shape(expected[0])
        assert [b.tenant_id for b in rows] == [workspace.pk]
        assert expected[0].share == "50%"
        assert len(statements) == 3
        for sql, params in statements:
            assert f'"tenants_brand"."tenant_id" = {workspace.pk}' in sql
            assert workspace.pk not in params
            assert "Shared name" in params
            assert 'tenant_id" = %s' not in sql


def test_another_workspaces_row_is_not_found(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    make_brand(other_tenant, "Theirs")
    with tenant_context(tenant):
        assert WRITTEN.first("Theirs") is None
        assert WRITTEN.rows("Theirs") == []


def test_no_open_tenant_raises_like_the_manager() -> None:
    with pytest.raises(TenantContextMissing):
        WRITTEN.rows("Anything")


def test_texts_kept_per_tenant_are_bounded(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("helpdesk.compiled._TENANT_TEXTS", 1)
    shape = CompiledQuery(_brands, [str], tenant_in_text=True)
    make_brand(tenant, "Mine")
    with tenant_context(tenant):
        assert [b.name for b in shape.rows("Mine")] == ["Mine"]
    [compiled] = shape._states.values()
    assert list(compiled.tenants) == [tenant.pk]
    # Another tenant's text is made for its call and not kept past the bound.
    with tenant_context(tenant.pk + 1000):
        assert shape.rows("Mine") == []
    assert list(compiled.tenants) == [tenant.pk]
    assert _TENANT_TEXTS == 256


def test_the_inbox_page_sends_its_tenant_in_the_text(
    tenant: Tenant, owner: User
) -> None:
    make_account(tenant)
    _SHAPES.clear()
    client: APIClient = token_client(tenant, owner, "read")
    url = f"{base(tenant)}/conversations/?status=open"
    with sent() as statements:
        assert client.get(url).status_code == 200
    [(sql, params)] = [s for s in statements if '"helpdesk_conversation"' in s[0]]

    assert f'"helpdesk_conversation"."tenant_id" = {tenant.pk} ' in sql
    assert '"tenant_id" = %s' not in sql
    assert tenant.pk not in params
    assert "open" in params  # the filters' values stay parameters
