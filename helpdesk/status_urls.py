"""Public, login-free URLs of the care core: the brand status endpoint (R8)."""

from django.urls import path

from helpdesk.status_views import brand_status_view

app_name = "status"

urlpatterns = [
    path(
        "<slug:tenant_slug>/<slug:brand_slug>.json",
        brand_status_view,
        name="brand",
    ),
]
