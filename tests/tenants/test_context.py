import pytest
from django.db import connection

from tenants.context import tenant_context
from tenants.exceptions import (
    TenantContextConflict,
    TenantContextMissing,
    TenantMismatch,
)
from tenants.models import Brand, Tenant

pytestmark = pytest.mark.django_db


def test_manager_raises_without_a_tenant(tenant: Tenant) -> None:
    with pytest.raises(TenantContextMissing):
        Brand.objects.count()


def test_manager_sees_only_the_open_tenant(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    with tenant_context(tenant):
        names = list(Brand.objects.values_list("name", flat=True))
    assert names == ["Acme Air"]


def test_opening_another_tenant_inside_one_is_refused(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    with (
        tenant_context(tenant),
        pytest.raises(TenantContextConflict),
        tenant_context(other_tenant),
    ):
        pass


def test_setting_is_cleared_after_a_nested_context(tenant: Tenant) -> None:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        assert cursor.fetchone() == (str(tenant.pk),)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        assert cursor.fetchone() == ("",)


def test_save_refuses_a_row_of_another_tenant(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    with tenant_context(other_tenant), pytest.raises(TenantMismatch):
        brand.save(update_fields=["name"])
    with tenant_context(tenant):
        assert Brand.objects.get().name == "Acme Air"


def test_save_stamps_the_open_tenant(tenant: Tenant) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.create(name="Acme Cargo", slug="acme-cargo")
    assert brand.tenant_id == tenant.pk


def test_bulk_create_stamps_the_open_tenant(tenant: Tenant) -> None:
    with tenant_context(tenant):
        created = Brand.objects.bulk_create([Brand(name="One", slug="one")])
        count = Brand.objects.filter(slug="one").count()
    assert [b.tenant_id for b in created] == [tenant.pk]
    assert count == 1
