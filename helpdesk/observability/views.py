"""`/metrics` (Prometheus) and `/readyz` (readiness). Neither is tenant-scoped:
both describe the deployment, never a workspace, and carry no tenant data.

Who may read /metrics:
- METRICS_TOKEN set: only a request with `Authorization: Bearer <METRICS_TOKEN>`
  (compared in constant time), from any address; anything else is 401.
- METRICS_TOKEN empty: only clients whose address (REMOTE_ADDR, as the ASGI server
  reports it) is in METRICS_ALLOWED_NETS (loopback by default); others get 403.
  uvicorn takes the client address from X-Forwarded-For when the request comes
  from one of its FORWARDED_ALLOW_IPS (default 127.0.0.1); a proxy on the same
  host that does not send it makes every request look local: set METRICS_TOKEN
  there, or do not route /metrics through the proxy.
"""

import hmac
import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from helpdesk.metrics import render_metrics
from helpdesk.observability.readiness import check_readiness

BEARER = "bearer "


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition; 401/403 JSON when the caller may not read it."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)


@never_cache
@require_safe
def readyz_view(request: HttpRequest) -> JsonResponse:
    """200 when every dependency in use answers, else 503; per-check JSON."""
    readiness = check_readiness()
    status = 200 if readiness["ready"] else 503
    return JsonResponse(
        {"status": "ready" if readiness["ready"] else "not ready", **readiness},
        status=status,
    )


def _refusal(request: HttpRequest) -> JsonResponse | None:
    token = settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        given = header[len(BEARER) :] if header.lower().startswith(BEARER) else ""
        if hmac.compare_digest(given.encode(), token.encode()):
            return None
        refused = JsonResponse(
            {"error": "a valid metrics token is required"}, status=401
        )
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    if _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return None
    return JsonResponse({"error": "metrics are not served to this address"}, status=403)


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(
        ip in network
        for network in _allowed_networks(tuple(settings.METRICS_ALLOWED_NETS))
    )


@cache
def _allowed_networks(
    nets: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in nets)
