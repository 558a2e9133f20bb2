"""Incidents in the tenant admin site (/t/<slug>/admin/), read only: linking,
notes, holding statements, updates and closing have rules (timeline, post_reply
per customer), so they stay in the product UI and API, which call the services."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from incidents.models import Incident, IncidentEntry
from tenants.admin import ReadOnlyTenantAdmin, tenant_admin_site


class IncidentEntryInline(admin.TabularInline[IncidentEntry, Incident]):
    model = IncidentEntry
    fields = ("created_at", "kind", "text", "actor")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Incident, site=tenant_admin_site)
class IncidentAdmin(ReadOnlyTenantAdmin[Incident]):
    list_display = ("title", "status", "brand", "created_at", "closed_at")
    list_filter = ("status", "brand")
    search_fields = ("title", "holding_statement")
    list_select_related = ("brand",)
    readonly_fields = (
        "title",
        "status",
        "brand",
        "holding_statement",
        "rule_terms",
        "rule_tag",
        "rule_listening_rule",
        "created_at",
        "closed_at",
    )
    fields = readonly_fields
    inlines = (IncidentEntryInline,)
