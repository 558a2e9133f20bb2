"""helpdesk.compiled: a queryset's shape compiled once gives what the queryset gives."""

from typing import Any

import pytest
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from helpdesk.compiled import CompiledQuery
from tenants.context import tenant_context
from tenants.exceptions import TenantContextMissing
from tenants.models import Brand, Tenant
from tests.factories import make_brand

pytestmark = pytest.mark.django_db


def _brands(name: str) -> Any:
    return (
        Brand.objects.select_related("tenant")
        .filter(name=name)
        .annotate(label=Concat(F("name"), Value("!")))
        .order_by("id")
    )


BRANDS = CompiledQuery(_brands, [str])


def _shape(brand: Brand) -> tuple[Any, ...]:
    return (brand.pk, brand.tenant_id, brand.name, brand.tenant.name, brand.label)  # type: ignore[attr-defined]


def test_rows_equal_the_querysets_in_each_tenant(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    for workspace in (tenant, other_tenant):
        make_brand(workspace, "Shared name")
    for workspace in (tenant, other_tenant, tenant):
        with tenant_context(workspace):
            compiled = BRANDS.rows("Shared name")
            expected = list(_brands("Shared name"))
            assert [_shape(b) for b in compiled] == [_shape(b) for b in expected]
            assert [b.tenant_id for b in compiled] == [workspace.pk]
            assert BRANDS.rows("No such brand") == []
            assert BRANDS.first("Shared name") == expected[0]


def test_another_workspaces_row_is_not_found(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    make_brand(other_tenant, "Theirs")
    with tenant_context(tenant):
        assert BRANDS.first("Theirs") is None


def test_no_open_tenant_raises_like_the_manager() -> None:
    with pytest.raises(TenantContextMissing):
        BRANDS.rows("Anything")


def test_a_value_of_the_wrong_type_is_refused(tenant: Tenant) -> None:
    with tenant_context(tenant), pytest.raises(TypeError):
        BRANDS.rows(7)


def test_a_shape_that_depends_on_the_time_is_refused(tenant: Tenant) -> None:
    timed = CompiledQuery(
        lambda name: Brand.objects.filter(name=name).annotate(at=Value(timezone.now())),
        [str],
    )
    with tenant_context(tenant), pytest.raises(ValueError, match="changes"):
        timed.rows("x")


def test_a_value_that_is_not_a_parameter_is_refused(tenant: Tenant) -> None:
    ignored = CompiledQuery(lambda name: Brand.objects.all(), [str])
    with tenant_context(tenant), pytest.raises(ValueError, match="reach"):
        ignored.rows("x")
