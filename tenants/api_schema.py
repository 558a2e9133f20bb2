"""OpenAPI descriptions of the API's authentication (drf-spectacular extensions).

Imported by `TenantsConfig.ready()`; defining the classes registers them.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api_auth.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A workspace API token (`esk_...`) from Settings → API tokens. "
                "Scopes: read, write, admin."
            ),
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api_auth.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
