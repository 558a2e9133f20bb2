"""Goodwill pools and codes in the tenant admin site (/t/<slug>/admin/): pools to
correct, codes to look up. Imports and claims have rules and stay in the product
UI and API, which call the services."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from goodwill.models import GoodwillCode, GoodwillPool
from tenants.admin import ReadOnlyTenantAdmin, TenantScopedAdmin, tenant_admin_site


@admin.register(GoodwillPool, site=tenant_admin_site)
class GoodwillPoolAdmin(TenantScopedAdmin[GoodwillPool]):
    list_display = ("name", "brand", "low_water_mark", "low_since", "created_at")
    list_filter = ("brand",)
    search_fields = ("name", "description")
    fields = ("name", "description", "low_water_mark")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the pools page adds them with their brand

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its used codes are the gestures report


@admin.register(GoodwillCode, site=tenant_admin_site)
class GoodwillCodeAdmin(ReadOnlyTenantAdmin[GoodwillCode]):
    list_display = ("code", "pool", "claimed_at", "claimed_by", "follower_band")
    list_filter = ("pool",)
    search_fields = ("code",)
    fields = (
        "code",
        "pool",
        "imported_at",
        "message",
        "conversation",
        "claimed_by",
        "claimed_at",
        "follower_band",
    )
