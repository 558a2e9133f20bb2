"""The public status endpoint (R8): `GET /status/<tenant_slug>/<brand_slug>.json`.

Public by design, for a brand's website or help page: no login, any origin may read
it (`Access-Control-Allow-Origin: *`). It shows only helpdesk.status.BrandStatus.
It lives outside `/t/<slug>/`, so it opens the tenant's context itself. An unknown,
deleted or suspended workspace and an unknown brand (including another workspace's
brand) all get the same 404 body. Answers are cached for 30 seconds per URL, and
each client address may ask STATUS_RATE_LIMIT_PER_MINUTE times a minute.
"""

import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from helpdesk.status import brand_status
from tenants.access import find_tenant
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tenants.ratelimit import fixed_window_wait

logger = logging.getLogger(__name__)

STATUS_CACHE_SECONDS = 30
NOT_FOUND: dict[str, Any] = {"error": "not_found"}


@require_safe
def brand_status_view(
    request: HttpRequest, tenant_slug: str, brand_slug: str
) -> JsonResponse:
    """The brand's public status as JSON; 404 (one body) when there is no such brand
    in a live workspace; 429 with Retry-After past the per-client limit."""
    wait = _rate_limited(request)
    if wait is not None:
        response = _json({"error": "rate_limited"}, status=429)
        response["Retry-After"] = str(wait)
        return response
    key = (
        "helpdesk.status."
        + hashlib.sha256(f"{tenant_slug}/{brand_slug}".encode()).hexdigest()
    )
    cached = _cache_get(key)
    if cached is None:
        cached = _lookup(tenant_slug, brand_slug)
        _cache_set(key, cached)
    status, payload = cached
    response = _json(payload, status=status)
    response["Cache-Control"] = f"public, max-age={STATUS_CACHE_SECONDS}"
    return response


def _lookup(tenant_slug: str, brand_slug: str) -> tuple[int, dict[str, Any]]:
    try:
        tenant = find_tenant(tenant_slug)
    except Http404:
        return 404, NOT_FOUND
    if tenant.status != Tenant.Status.ACTIVE:
        return 404, NOT_FOUND
    with tenant_context(tenant):
        brand = Brand.objects.filter(slug=brand_slug).first()
        if brand is None:
            return 404, NOT_FOUND
        return 200, dict(brand_status(brand, at=timezone.now()))


def _json(payload: dict[str, Any], *, status: int) -> JsonResponse:
    response = JsonResponse(payload, status=status)
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _rate_limited(request: HttpRequest) -> int | None:
    """Seconds to wait when this client used up its minute, else None (also when
    the cache is down: the limit protects the database, it does not guard data)."""
    return fixed_window_wait(
        "helpdesk.status",
        request.META.get("REMOTE_ADDR", ""),
        limit=settings.STATUS_RATE_LIMIT_PER_MINUTE,
        now=time.time(),
    )


def _cache_get(key: str) -> tuple[int, dict[str, Any]] | None:
    try:
        value = cache.get(key)
    except Exception:
        logger.warning("status cache unavailable", exc_info=True)
        return None
    return value if isinstance(value, tuple) else None


def _cache_set(key: str, value: tuple[int, dict[str, Any]]) -> None:
    try:
        cache.set(key, value, STATUS_CACHE_SECONDS)
    except Exception:
        logger.warning("status cache unavailable", exc_info=True)
