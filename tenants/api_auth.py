"""DRF authentication and throttling of the workspace API.

Kept apart from `tenants.permissions` (which imports `APIView`): DRF imports these
classes from its settings while `rest_framework.views` is still loading.
"""

import logging
from typing import Any

from rest_framework import authentication, throttling
from rest_framework.request import Request

from tenants.outages import CACHE_ERRORS

logger = logging.getLogger(__name__)


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
    """Requests per token (or per member for browser sessions), with Retry-After.

    The history lives in the Django cache (Redis). When the cache cannot be
    reached the request is allowed and a warning logged: the limit protects the
    servers, and a Redis outage must not refuse every API call.
    """

    scope = "api"

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as error:
            logger.warning("API rate limit not applied, cache unavailable: %r", error)
            return True

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = getattr(request._request, "api_token", None)
        if token is not None:
            ident = f"token:{token.pk}"
        elif request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
