from django.urls import path

from frontend import views

app_name = "frontend"

tenant = "t/<slug:tenant_slug>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("workspaces/", views.workspaces, name="workspaces"),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path(tenant, views.workspace, name="workspace"),
    path(f"{tenant}settings/members/", views.members, name="members"),
    path(
        f"{tenant}settings/members/<int:membership_id>/role/",
        views.member_role,
        name="member-role",
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
    path(f"{tenant}settings/accounts/", views.accounts, name="accounts"),
    path(
        f"{tenant}settings/workspace/delete/",
        views.workspace_delete,
        name="workspace-delete",
    ),
]
