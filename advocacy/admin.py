"""Advocate suggestions and the competitor feed in the tenant admin
(/t/<slug>/admin/): read-only, scoped to the workspace like the others.
Decisions go through the advocates page or the API (audited)."""

from advocacy.models import AdvocateSuggestion, CompetitorMention
from tenants.admin import ReadOnlyTenantAdmin, tenant_admin_site


class AdvocateSuggestionAdmin(ReadOnlyTenantAdmin[AdvocateSuggestion]):
    list_display = (
        "contact",
        "status",
        "positive_count",
        "defence_count",
        "last_evidence_at",
        "decided_at",
    )
    list_filter = ("status",)
    fields = (
        "contact",
        "status",
        "positive_count",
        "defence_count",
        "last_evidence_at",
        "suggested_at",
        "decided_at",
        "decided_by",
        "decision_note",
    )


class CompetitorMentionAdmin(ReadOnlyTenantAdmin[CompetitorMention]):
    list_display = ("rule", "platform", "author_handle", "sentiment", "posted_at")
    list_filter = ("rule", "sentiment", "platform")
    search_fields = ("text", "author_handle")
    fields = (
        "rule",
        "brand",
        "platform",
        "external_id",
        "author_handle",
        "author_name",
        "author_followers",
        "text",
        "sentiment",
        "posted_at",
    )


tenant_admin_site.register(AdvocateSuggestion, AdvocateSuggestionAdmin)
tenant_admin_site.register(CompetitorMention, CompetitorMentionAdmin)
