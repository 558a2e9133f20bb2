"""API routes of the care core, mounted under /api/v1/t/<tenant_slug>/."""

from django.urls import path

from helpdesk import (
    api,
    api_contacts,
    api_deflection,
    api_members,
    api_reports,
    api_saved_replies,
    api_webhooks,
)
from incidents import api_urls as incidents_api_urls
from tenants import api_sla
from tenants.api import WorkspacePingApi

urlpatterns = [
    path("ping/", WorkspacePingApi.as_view(), name="ping"),
    path(
        "members/<int:membership_id>/languages/",
        api_members.MemberLanguagesApi.as_view(),
        name="member-languages",
    ),
    path("conversations/", api.ConversationListApi.as_view(), name="conversation-list"),
    path(
        "conversations/<int:conversation_id>/",
        api.ConversationDetailApi.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<int:conversation_id>/messages/",
        api.MessageListApi.as_view(),
        name="message-list",
    ),
    path(
        "conversations/<int:conversation_id>/move-private/",
        api.ConversationMovePrivateApi.as_view(),
        name="conversation-move-private",
    ),
    path(
        "conversations/<int:conversation_id>/no-reply/",
        api.ConversationNoReplyApi.as_view(),
        name="conversation-no-reply",
    ),
    path(
        "conversations/<int:conversation_id>/notes/",
        api.NoteListApi.as_view(),
        name="note-list",
    ),
    path(
        "messages/<int:message_id>/",
        api.MessageDetailApi.as_view(),
        name="message-detail",
    ),
    path(
        "messages/<int:message_id>/cancel/",
        api.MessageCancelApi.as_view(),
        name="message-cancel",
    ),
    path(
        "messages/<int:message_id>/retry/",
        api.MessageRetryApi.as_view(),
        name="message-retry",
    ),
    path("contacts/", api_contacts.ContactListApi.as_view(), name="contact-list"),
    path(
        "contacts/<int:contact_id>/",
        api_contacts.ContactDetailApi.as_view(),
        name="contact-detail",
    ),
    path(
        "contacts/<int:contact_id>/merge/",
        api_contacts.ContactMergeApi.as_view(),
        name="contact-merge",
    ),
    path(
        "saved-replies/",
        api_saved_replies.SavedReplyListApi.as_view(),
        name="saved-reply-list",
    ),
    path(
        "saved-replies/<int:reply_id>/",
        api_saved_replies.SavedReplyDetailApi.as_view(),
        name="saved-reply-detail",
    ),
    path(
        "saved-replies/<int:reply_id>/render/",
        api_saved_replies.SavedReplyRenderApi.as_view(),
        name="saved-reply-render",
    ),
    path(
        "webhooks/",
        api_webhooks.WebhookEndpointListApi.as_view(),
        name="webhook-list",
    ),
    path(
        "webhooks/<int:endpoint_id>/",
        api_webhooks.WebhookEndpointDetailApi.as_view(),
        name="webhook-detail",
    ),
    path(
        "webhooks/<int:endpoint_id>/secret/",
        api_webhooks.WebhookEndpointSecretApi.as_view(),
        name="webhook-secret",
    ),
    path(
        "webhooks/<int:endpoint_id>/ping/",
        api_webhooks.WebhookEndpointPingApi.as_view(),
        name="webhook-ping",
    ),
    path(
        "webhooks/<int:endpoint_id>/deliveries/",
        api_webhooks.WebhookDeliveryListApi.as_view(),
        name="webhook-delivery-list",
    ),
    path(
        "brands/<int:brand_id>/deflection/",
        api_deflection.BrandDeflectionApi.as_view(),
        name="brand-deflection",
    ),
    # SLA policies and holidays (tenants.api_sla).
    path(
        "brands/<int:brand_id>/sla-policy/",
        api_sla.BrandSlaPolicyApi.as_view(),
        name="brand-sla-policy",
    ),
    path("sla-policy/", api_sla.WorkspaceSlaPolicyApi.as_view(), name="sla-policy"),
    path(
        "brands/<int:brand_id>/holidays/",
        api_sla.HolidayListApi.as_view(),
        name="brand-holiday-list",
    ),
    path(
        "brands/<int:brand_id>/holidays/<int:holiday_id>/",
        api_sla.HolidayDetailApi.as_view(),
        name="brand-holiday-detail",
    ),
    # Care reports (helpdesk.api_reports).
    path(
        "reports/summary/",
        api_reports.ReportSummaryApi.as_view(),
        name="report-summary",
    ),
    path(
        "reports/timeseries/",
        api_reports.ReportTimeseriesApi.as_view(),
        name="report-timeseries",
    ),
    path(
        "reports/agents/", api_reports.ReportAgentsApi.as_view(), name="report-agents"
    ),
    path(
        "reports/fairness/",
        api_reports.ReportFairnessApi.as_view(),
        name="report-fairness",
    ),
    path(
        "reports/heatmap/",
        api_reports.ReportHeatmapApi.as_view(),
        name="report-heatmap",
    ),
    path(
        "reports/aggregates.csv",
        api_reports.ReportAggregatesCsvApi.as_view(),
        name="report-aggregates-csv",
    ),
    path(
        "reports/conversations.csv",
        api_reports.ReportConversationsCsvApi.as_view(),
        name="report-conversations-csv",
    ),
]
urlpatterns += incidents_api_urls.urlpatterns
