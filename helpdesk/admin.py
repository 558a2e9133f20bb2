"""The care core in the tenant admin site (/t/<slug>/admin/): saved replies and tags to
manage, contacts to correct, conversations to look up. Writes that have rules (replies,
assignment, status, merges) stay in the product UI and API, which call the services."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from helpdesk.models import Contact, Conversation, Identity, SavedReply, Tag
from tenants.admin import ReadOnlyTenantAdmin, TenantScopedAdmin, tenant_admin_site


@admin.register(SavedReply, site=tenant_admin_site)
class SavedReplyAdmin(TenantScopedAdmin[SavedReply]):
    list_display = ("title", "brand", "created_at")
    list_filter = ("brand",)
    search_fields = ("title", "body")
    autocomplete_fields = ("brand",)
    fields = ("title", "brand", "body")


@admin.register(Tag, site=tenant_admin_site)
class TagAdmin(TenantScopedAdmin[Tag]):
    list_display = ("name",)
    search_fields = ("name",)
    fields = ("name",)


class IdentityInline(admin.TabularInline[Identity, Contact]):
    model = Identity
    fields = ("platform", "handle", "display_name", "followers", "profile_url")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Contact, site=tenant_admin_site)
class ContactAdmin(TenantScopedAdmin[Contact]):
    list_display = ("display_name", "email", "external_crm_id", "created_at")
    search_fields = ("display_name", "email", "external_crm_id", "identities__handle")
    fields = ("display_name", "email", "external_crm_id", "notes")
    inlines = (IdentityInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # contacts come from the platforms

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation, site=tenant_admin_site)
class ConversationAdmin(ReadOnlyTenantAdmin[Conversation]):
    list_display = (
        "id",
        "brand",
        "platform",
        "origin",
        "status",
        "contact",
        "public_reply_count",
        "last_activity_at",
    )
    list_filter = ("status", "platform", "origin", "brand", "sentiment")
    search_fields = ("preview", "contact__display_name", "contact__identities__handle")
    list_select_related = ("brand", "contact")
    readonly_fields = (
        "brand",
        "social_account",
        "contact",
        "platform",
        "origin",
        "status",
        "channel_state",
        "public_reply_count",
        "customer_message_count",
        "first_customer_message_at",
        "first_response_at",
        "sla_due_at",
        "preview",
    )
    fields = readonly_fields
