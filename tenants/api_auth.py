"""DRF authentication and throttling of the workspace API.

Kept apart from `tenants.permissions` (which imports `APIView`): DRF imports these
classes from its settings while `rest_framework.views` is still loading.
"""

from typing import Any

from rest_framework import authentication, throttling
from rest_framework.request import Request


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Accept the token the middleware authenticated for this request."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        token = getattr(request._request, "api_token", None)
        if token is None:
            return None
        return (token.membership.user, token)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser's session, with CSRF enforced on writes (DRF's behaviour)."""

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiRateThrottle(throttling.SimpleRateThrottle):
    """Requests per token (or per member for browser sessions), with Retry-After."""

    scope = "api"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = getattr(request._request, "api_token", None)
        if token is not None:
            ident = f"token:{token.pk}"
        elif request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
