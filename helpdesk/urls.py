"""Root URLconf. Tenant pages live under /t/<tenant_slug>/ (see frontend.urls); the
tenant admin site is mounted per request at /t/<slug>/admin/ by TenantMiddleware."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from advocacy import api_urls as advocacy_api
from goodwill import api_urls as goodwill_api
from helpdesk import api_urls as helpdesk_api
from helpdesk.observability.views import metrics_view, readyz_view
from social import api_urls as social_api
from social import channel_api
from social.webhooks import receive_webhook
from spikes import api_urls as spikes_api
from tenants import api_urls as tenants_api
from tenants.admin import operator_site


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# Swagger UI sets inline styles; its scripts stay same-origin files (the sidecar).
API_DOCS_CSP: dict[str, Any] = {
    **settings.SECURE_CSP,
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
}

# Every API route of a workspace, one namespace: /api/v1/t/<slug>/...
api_patterns = [
    *helpdesk_api.urlpatterns,
    *channel_api.urlpatterns,
    *social_api.urlpatterns,
    *tenants_api.urlpatterns,
    *goodwill_api.urlpatterns,
    *advocacy_api.urlpatterns,
    *spikes_api.urlpatterns,
]

urlpatterns = [
    path("admin/", operator_site.urls),
    path(
        "api/v1/t/<slug:tenant_slug>/",
        include((api_patterns, "api")),
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        csp_override(API_DOCS_CSP)(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    path("accounts/", include("allauth.urls")),
    path("healthz", health, name="health"),
    path("readyz", readyz_view, name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("hooks/<str:platform>/", receive_webhook, name="webhook"),
    path("status/", include("helpdesk.status_urls")),
    path("", include("goodwill.urls")),
    path("", include("social.urls")),
    path("", include("advocacy.urls")),
    path("", include("spikes.urls")),
    path("", include("frontend.urls")),
]
if settings.SANDBOX_ENABLED:
    urlpatterns.insert(0, path("sandbox/", include("social.sandbox.urls")))
