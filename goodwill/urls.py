"""Pages and fragments of goodwill gestures under /t/<tenant_slug>/."""

from django.urls import path

from goodwill import views

app_name = "goodwill"
tenant = "t/<slug:tenant_slug>/"

urlpatterns = [
    path(f"{tenant}settings/goodwill/", views.pools_page, name="pools"),
    path(
        f"{tenant}conversations/<int:conversation_id>/goodwill/",
        views.composer_pools,
        name="composer",
    ),
    path(f"{tenant}reports/goodwill/", views.report_section, name="report"),
]
