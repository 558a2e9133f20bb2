"""DRF authentication and throttling of the workspace API.

Kept apart from `tenants.permissions` (which imports `APIView`): DRF imports these
classes from its settings while `rest_framework.views` is still loading.
"""

import logging
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from rest_framework import authentication, throttling
from rest_framework.request import Request

from tenants.outages import CACHE_ERRORS
from tenants.ratelimit import redis_client as _redis_client
from tenants.ratelimit import sliding_window

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


# ident -> its window's cache key, per cache backend: the key function and the
# validation (a Python loop over the key's characters) gave the same key for the
# same caller on every request. Bounded: cleared when full.
_WINDOW_KEYS = "_earshot_window_keys"
_WINDOW_KEYS_MAX = 4096


def _window_key(backend: Any, ident: str) -> str:
    known: dict[str, str] | None = backend.__dict__.get(_WINDOW_KEYS)
    if known is None:
        known = backend.__dict__[_WINDOW_KEYS] = {}
    key = known.get(ident)
    if key is None:
        key = backend.make_and_validate_key(f"{ident}:window")
        if len(known) >= _WINDOW_KEYS_MAX:
            known.clear()
        known[ident] = key
    return key


class ApiRateThrottle(throttling.SimpleRateThrottle):
    """Requests per token (or per member for browser sessions), with Retry-After.

    The window lives in Redis, as a sorted set per caller reached through the
    cache's connection pool (other cache backends, like the demo's, keep DRF's
    list). When the cache cannot be reached the request is allowed and a warning
    logged: the limit protects the servers, and a Redis outage must not refuse
    every API call.
    """

    scope = "api"
    num_requests: int
    duration: int
    oldest: float | None = None
    counted = 0

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            backend = caches[DEFAULT_CACHE_ALIAS]
            client = _redis_client(backend)
            if client is None:
                return super().allow_request(request, view)
            return self._allow_in_redis(client, backend, request, view)
        except CACHE_ERRORS as error:
            logger.warning("API rate limit not applied, cache unavailable: %r", error)
            return True

    def _allow_in_redis(
        self, client: Any, backend: Any, request: Request, view: Any
    ) -> bool:
        """DRF's sliding window, kept as a sorted set: one round trip per request
        (tenants.ratelimit.sliding_window).

        DRF keeps the window's timestamps as a pickled list read and written whole
        (two round trips, and the list grows to the rate). Here the request is added
        first and taken back only when it is over the limit, which is the same rule:
        allowed while fewer than `num_requests` are in the last `duration` seconds.

        A view with a `throttle_ride_along(request)` method may give a script of
        its own (tenants.resp.ScriptCall) to send in the same round trip (the API
        channel push reads its cached answers so).
        """
        if self.rate is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        key = _window_key(backend, ident)
        self.now = now = self.timer()
        ride_along = getattr(view, "throttle_ride_along", None)
        verdict = sliding_window(
            client,
            key,
            limit=self.num_requests,
            window=self.duration,
            now=now,
            label="API",
            log=logger,
            also=None if ride_along is None else ride_along(request),
        )
        self.counted, self.oldest = verdict.counted, verdict.oldest
        return verdict.allowed

    def wait(self) -> float | None:
        """Seconds until a request would pass, as DRF computes it."""
        if self.oldest is None:
            drf: float | None = super().wait()
            return drf
        remaining = self.duration - (self.now - self.oldest)
        available = self.num_requests - self.counted + 1
        if available <= 0:
            return None
        return remaining / float(available)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = getattr(request._request, "api_token", None)
        if token is not None:
            ident = f"token:{token.pk}"
        elif request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
