"""A report's brand (helpdesk.reports._scope) is read through a lookup compiled
once per connection (helpdesk.compiled), not a queryset built for each of the
page's five selectors; only the open workspace's brand is found."""

from datetime import date
from typing import Any

import pytest

from helpdesk.reports import ReportFilters, _scope
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.helpdesk.report_support import first_brand

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 2)


def _filters(brand_id: int) -> ReportFilters:
    return ReportFilters(start=DAY, end=DAY, brand_id=brand_id, timezone="UTC")


def test_the_brand_is_read_without_building_its_queryset_again(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand = first_brand(tenant)
    with tenant_context(tenant):
        Brand.objects.filter(pk=brand.pk).update(
            timezone="Europe/Lisbon", business_hours={"mon": [["09:00", "17:00"]]}
        )
        first = _scope(_filters(brand.pk))

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the brand's queryset was built again")

        monkeypatch.setattr(Brand.objects, "filter", refuse)
        again = _scope(_filters(brand.pk))
    assert first.brand is not None
    assert again.brand is not None
    assert again.brand.pk == first.brand.pk == brand.pk
    assert again.brand.timezone == "Europe/Lisbon"
    assert again.brand.business_hours == {"mon": [["09:00", "17:00"]]}
    assert str(again.zone) == str(first.zone) == "Europe/Lisbon"


def test_another_workspaces_brand_is_not_found(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = first_brand(other_tenant)
    with tenant_context(other_tenant):
        Brand.objects.filter(pk=theirs.pk).update(timezone="Asia/Tokyo")
    with tenant_context(tenant):
        mine = _scope(_filters(first_brand(tenant).pk))
        scope = _scope(_filters(theirs.pk))
    assert mine.brand is not None
    assert scope.brand is None
    assert str(scope.zone) == "UTC"
    with tenant_context(other_tenant):
        assert Brand.objects.get(pk=theirs.pk).timezone == "Asia/Tokyo"
