"""The public status endpoint (R8), `GET /status/<tenant_slug>/<brand_slug>.json`,
and the brand's response badge (R9), `GET /status/<tenant_slug>/<brand_slug>/badge.svg`.

Public by design, for a brand's website or help page: no login, any origin may read
it (`Access-Control-Allow-Origin: *`). It shows only helpdesk.status.BrandStatus.
It lives outside `/t/<slug>/`, so it opens the tenant's context itself. An unknown,
deleted or suspended workspace and an unknown brand (including another workspace's
brand) all get the same 404 body. Answers are cached for 30 seconds per URL, and
each client address may ask STATUS_RATE_LIMIT_PER_MINUTE times a minute, both URLs
together. The badge exists only for a brand that publishes it (`publish_badge`);
for any other it is the same 404.
"""

import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from helpdesk.badge import badge_svg
from helpdesk.status import badge_figures, brand_status
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
) -> HttpResponse:
    """The brand's public status as JSON; 404 (one body) when there is no such brand
    in a live workspace; 429 with Retry-After past the per-client limit."""
    return _public(request, "status", tenant_slug, brand_slug)


@require_safe
def brand_badge_view(
    request: HttpRequest, tenant_slug: str, brand_slug: str
) -> HttpResponse:
    """The brand's response badge as SVG when it publishes one, else the same 404
    as the status endpoint; cached and rate-limited with it."""
    return _public(request, "badge", tenant_slug, brand_slug)


def _public(
    request: HttpRequest, kind: str, tenant_slug: str, brand_slug: str
) -> HttpResponse:
    wait = _rate_limited(request)
    if wait is not None:
        limited = _json({"error": "rate_limited"}, status=429)
        limited["Retry-After"] = str(wait)
        return limited
    digest = hashlib.sha256(f"{tenant_slug}/{brand_slug}".encode()).hexdigest()
    key = f"helpdesk.{kind}.{digest}"
    cached = _cache_get(key)
    if cached is None:
        cached = _lookup(kind, tenant_slug, brand_slug)
        _cache_set(key, cached)
    status, payload = cached
    response: HttpResponse
    if isinstance(payload, str):
        response = HttpResponse(payload, content_type="image/svg+xml; charset=utf-8")
        response["Access-Control-Allow-Origin"] = "*"
    else:
        response = _json(payload, status=status)
    response["Cache-Control"] = f"public, max-age={STATUS_CACHE_SECONDS}"
    return response


def _lookup(
    kind: str, tenant_slug: str, brand_slug: str
) -> tuple[int, dict[str, Any] | str]:
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
        if kind == "status":
            return 200, dict(brand_status(brand, at=timezone.now()))
        if not brand.publish_badge:
            return 404, NOT_FOUND
        figures = badge_figures(brand, at=timezone.now())
        return 200, badge_svg(brand.name, figures["text"])


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


def _cache_get(key: str) -> tuple[int, dict[str, Any] | str] | None:
    try:
        value = cache.get(key)
    except Exception:
        logger.warning("status cache unavailable", exc_info=True)
        return None
    return value if isinstance(value, tuple) else None


def _cache_set(key: str, value: tuple[int, dict[str, Any] | str]) -> None:
    try:
        cache.set(key, value, STATUS_CACHE_SECONDS)
    except Exception:
        logger.warning("status cache unavailable", exc_info=True)
