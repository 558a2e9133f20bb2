"""Outages answer 503 with Retry-After, never a 500 page (DESIGN.md §5, invariant 7).

While PostgreSQL, Redis or the broker is unreachable a request fails with one of the
errors `tenants.outages.outage_service` recognises. The REST API's exception handler
answers those raised in a view itself (helpdesk/exceptions.py). Errors raised
elsewhere, in a middleware (the tenant lookup, sessions) or in the view of a page,
are turned into a response by Django's handler around each middleware, as a 500 or,
with DEBUG, the technical 500 page; so the `got_request_exception` receiver marks
the request with the service, and `OutageMiddleware`, the outermost middleware,
replaces that response: the API's JSON error body for `/api/` and JSON clients, a
plain "try again" page for everything else. It works the same with DEBUG on.
"""

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from tenants.outages import RETRY_AFTER_SECONDS, Service, outage_service

logger = logging.getLogger(__name__)

OUTAGE_MESSAGE = (
    "Earshot cannot reach one of its services right now; "
    "try again after Retry-After seconds."
)
_MARK = "_earshot_outage"
_JSON_PATHS = ("/api/", "/status/")


def outage_body(service: Service) -> dict[str, Any]:
    """The API's error body for an outage of `service`."""
    return {
        "code": "service_unavailable",
        "message": OUTAGE_MESSAGE,
        "fields": {},
        "details": {"service": service},
    }


def outage_response(request: HttpRequest, service: Service) -> HttpResponse:
    """503 with Retry-After: the API's JSON body, or the plain page for a browser.

    The page is rendered without the request (no context processors), so it needs
    neither the session nor the database.
    """
    response: HttpResponse
    if _wants_json(request):
        response = JsonResponse(outage_body(service), status=503)
    else:
        page = render_to_string(
            "helpdesk/outage.html", {"retry_after": RETRY_AFTER_SECONDS}
        )
        response = HttpResponse(page, status=503)
        response["Content-Security-Policy"] = "default-src 'none'"
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _wants_json(request: HttpRequest) -> bool:
    if request.path_info.startswith(_JSON_PATHS):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def mark_outage(sender: Any, request: HttpRequest | None = None, **_: Any) -> None:
    """`got_request_exception` receiver: note which service the failure was."""
    service = outage_service(sys.exc_info()[1])
    if request is not None and service is not None:
        setattr(request, _MARK, service)


class OutageMiddleware:
    """Outermost middleware: a request that failed on an outage answers 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        got_request_exception.connect(mark_outage, dispatch_uid="helpdesk.outage")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        service: Service | None = getattr(request, _MARK, None)
        if service is None or response.status_code < 500:
            return response
        logger.warning(
            "%s %s answered 503: %s unavailable", request.method, request.path, service
        )
        return outage_response(request, service)
