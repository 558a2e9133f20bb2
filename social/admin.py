"""Listening rules and connected accounts in the tenant admin (/t/<slug>/admin/)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from social.models import ListeningRule, SocialAccount
from tenants.admin import TenantScopedAdmin, tenant_admin_site


@admin.register(ListeningRule, site=tenant_admin_site)
class ListeningRuleAdmin(TenantScopedAdmin[ListeningRule]):
    list_display = ("name", "brand", "action", "competitor", "enabled", "query")
    list_filter = ("brand", "action", "competitor", "enabled")
    search_fields = ("name", "query")
    autocomplete_fields = ("brand",)
    fields = (
        "name",
        "brand",
        "query",
        "variants",
        "platforms",
        "action",
        "competitor",
        "enabled",
    )

    def save_model(
        self, request: HttpRequest, obj: ListeningRule, form: Any, change: bool
    ) -> None:
        from django.utils import timezone

        obj.updated_at = timezone.now()  # invalidates the compiled matcher
        super().save_model(request, obj, form, change)


@admin.register(SocialAccount, site=tenant_admin_site)
class SocialAccountAdmin(TenantScopedAdmin[SocialAccount]):
    list_display = ("handle", "platform", "brand", "purpose", "status")
    list_filter = ("platform", "status", "purpose")
    search_fields = ("handle", "display_name")
    fields = ("brand", "handle", "platform", "purpose", "status", "last_error")
    readonly_fields = ("brand", "handle", "platform", "status", "last_error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts are connected through the platform's OAuth flow
