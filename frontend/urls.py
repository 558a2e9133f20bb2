from django.urls import path

from frontend import (
    account_views,
    inbox_views,
    incident_views,
    member_language_views,
    reports_views,
    settings_views,
    token_views,
    views,
    webhook_views,
)

app_name = "frontend"

tenant = "t/<slug:tenant_slug>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("workspaces/", views.workspaces, name="workspaces"),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path(tenant, views.workspace, name="workspace"),
    path(f"{tenant}inbox/", inbox_views.inbox, name="inbox"),
    path(
        f"{tenant}inbox/<int:conversation_id>/",
        inbox_views.inbox_conversation,
        name="inbox-conversation",
    ),
    path(
        f"{tenant}inbox/rows/<int:conversation_id>/",
        inbox_views.conversation_row,
        name="conversation-row",
    ),
    path(f"{tenant}inbox/counts/", inbox_views.inbox_counters, name="inbox-counts"),
    path(f"{tenant}inbox/presence/", inbox_views.presence, name="presence"),
    path(
        f"{tenant}conversations/<int:conversation_id>/",
        inbox_views.conversation,
        name="conversation",
    ),
    path(
        f"{tenant}conversations/<int:conversation_id>/header/",
        inbox_views.conversation_header,
        name="conversation-header",
    ),
    path(
        f"{tenant}conversations/<int:conversation_id>/timeline/",
        inbox_views.conversation_timeline,
        name="conversation-timeline",
    ),
    path(
        f"{tenant}conversations/<int:conversation_id>/composer/",
        inbox_views.composer,
        name="composer",
    ),
    path(
        f"{tenant}conversations/<int:conversation_id>/contact/",
        inbox_views.contact_panel,
        name="contact-panel",
    ),
    path(
        f"{tenant}conversations/<int:conversation_id>/messages/<int:message_id>/",
        inbox_views.message_row,
        name="message-row",
    ),
    path(
        f"{tenant}contacts/<int:contact_id>/merge-candidates/",
        inbox_views.contact_merge_candidates,
        name="contact-merge-candidates",
    ),
    path(f"{tenant}reports/", reports_views.reports, name="reports"),
    path(f"{tenant}incidents/", incident_views.incident_list, name="incidents"),
    path(
        f"{tenant}incidents/<int:incident_id>/",
        incident_views.incident_page,
        name="incident",
    ),
    path(
        f"{tenant}incidents/<int:incident_id>/progress/",
        incident_views.incident_progress,
        name="incident-progress",
    ),
    path(f"{tenant}settings/members/", views.members, name="members"),
    path(
        f"{tenant}settings/members/<int:membership_id>/role/",
        views.member_role,
        name="member-role",
    ),
    path(
        f"{tenant}settings/members/<int:membership_id>/languages/",
        member_language_views.member_languages,
        name="member-languages",
    ),
    path(
        f"{tenant}settings/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
    path(
        f"{tenant}settings/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation-revoke",
    ),
    path(f"{tenant}settings/brands/", views.brands, name="brands"),
    path(
        f"{tenant}settings/brands/<int:brand_id>/",
        settings_views.brand_settings,
        name="brand-settings",
    ),
    path(
        f"{tenant}settings/brands/<int:brand_id>/status/",
        settings_views.brand_status,
        name="brand-status",
    ),
    path(
        f"{tenant}settings/listening/",
        settings_views.listening_rules,
        name="listening-rules",
    ),
    path(
        f"{tenant}settings/listening/rules/",
        settings_views.listening_rule_list,
        name="listening-rule-list",
    ),
    path(
        f"{tenant}settings/saved-replies/",
        settings_views.saved_replies,
        name="saved-replies",
    ),
    path(
        f"{tenant}settings/saved-replies/list/",
        settings_views.saved_reply_list,
        name="saved-reply-list",
    ),
    path(f"{tenant}settings/accounts/", account_views.accounts, name="accounts"),
    path(f"{tenant}settings/api-tokens/", token_views.api_tokens, name="api-tokens"),
    path(
        f"{tenant}settings/api-tokens/<int:token_id>/revoke/",
        token_views.api_token_revoke,
        name="api-token-revoke",
    ),
    # Account actions that call the platform live outside /t/ so that call runs
    # outside the request's tenant transaction (frontend/account_views.py).
    path(
        "connect/<slug:tenant_slug>/mastodon/",
        account_views.connect_mastodon,
        name="connect-mastodon",
    ),
    path(
        "connect/<slug:tenant_slug>/bluesky/",
        account_views.connect_bluesky,
        name="connect-bluesky",
    ),
    path(
        "connect/<slug:tenant_slug>/accounts/<int:account_id>/disconnect/",
        account_views.account_disconnect,
        name="account-disconnect",
    ),
    path(
        f"{tenant}settings/workspace/delete/",
        views.workspace_delete,
        name="workspace-delete",
    ),
    path(f"{tenant}settings/webhooks/", webhook_views.webhooks, name="webhooks"),
    path(
        f"{tenant}settings/webhooks/<int:endpoint_id>/",
        webhook_views.webhook,
        name="webhook",
    ),
    path(
        f"{tenant}settings/webhooks/<int:endpoint_id>/enable/",
        webhook_views.webhook_enable,
        name="webhook-enable",
    ),
    path(
        f"{tenant}settings/webhooks/<int:endpoint_id>/disable/",
        webhook_views.webhook_disable,
        name="webhook-disable",
    ),
    path(
        f"{tenant}settings/webhooks/<int:endpoint_id>/ping/",
        webhook_views.webhook_ping,
        name="webhook-ping",
    ),
    path(
        f"{tenant}settings/webhooks/<int:endpoint_id>/delete/",
        webhook_views.webhook_delete,
        name="webhook-delete",
    ),
    path(
        f"{tenant}settings/webhooks/<int:endpoint_id>/rotate/",
        webhook_views.webhook_rotate,
        name="webhook-rotate",
    ),
    path(
        f"{tenant}settings/webhooks/<int:endpoint_id>/reveal/",
        webhook_views.webhook_reveal,
        name="webhook-reveal",
    ),
]
