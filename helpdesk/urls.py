"""Root URLconf. Tenant pages live under /t/<tenant_slug>/ (see frontend.urls); the
tenant admin site is mounted per request at /t/<slug>/admin/ by TenantMiddleware."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from social.webhooks import receive_webhook
from tenants.admin import operator_site


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", operator_site.urls),
    path("accounts/", include("allauth.urls")),
    path("healthz", health, name="health"),
    path("hooks/<str:platform>/", receive_webhook, name="webhook"),
    path("", include("social.urls")),
    path("", include("frontend.urls")),
]
if settings.SANDBOX_ENABLED:
    urlpatterns.insert(0, path("sandbox/", include("social.sandbox.urls")))
