"""Public, login-free URLs of the care core: the brand status endpoint (R8) and
the brand's response badge (R9)."""

from django.urls import path

from helpdesk.status_views import brand_badge_view, brand_status_view

app_name = "status"

urlpatterns = [
    path(
        "<slug:tenant_slug>/<slug:brand_slug>.json",
        brand_status_view,
        name="brand",
    ),
    path(
        "<slug:tenant_slug>/<slug:brand_slug>/badge.svg",
        brand_badge_view,
        name="badge",
    ),
]
