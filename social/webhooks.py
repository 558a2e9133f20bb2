"""Webhook receivers: verify, store raw, enqueue, answer fast (DESIGN §2, invariant 2).

A delivery is acknowledged only after its raw body is committed as a WebhookEvent;
processing happens in `social.process_webhook_event`. A replayed delivery (same event
key) is acknowledged and not processed again. Unsigned or wrongly signed requests get
401 and are not stored; signed but malformed bodies get 400 and are kept.
"""

import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from social.config import app_secrets
from social.connectors import get_connector
from social.connectors.base import Connector, ConnectorError
from social.models import WebhookEvent


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def receive_webhook(request: HttpRequest, platform: str) -> HttpResponse:
    """`/hooks/<platform>/`: the platform's GET check, or one POSTed delivery."""
    if platform not in settings.SOCIAL_PLATFORMS:
        return _error(404, "unknown platform")
    try:
        connector = get_connector(platform)
    except ConnectorError:
        return _error(404, "unknown platform")
    app = app_secrets(platform)
    if request.method == "GET":
        params = {key: str(value) for key, value in request.GET.items()}
        status, answer = connector.webhook_challenge(params, app)
        content_type = "application/json" if answer.startswith("{") else "text/plain"
        return HttpResponse(answer, status=status, content_type=content_type)
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.WEBHOOK_MAX_BYTES:
        return _error(413, f"body over {settings.WEBHOOK_MAX_BYTES} bytes")
    body = request.body
    if len(body) > settings.WEBHOOK_MAX_BYTES:
        return _error(413, f"body over {settings.WEBHOOK_MAX_BYTES} bytes")
    headers = {key.lower(): value for key, value in request.headers.items()}
    if not connector.verify_webhook(body, headers, app):
        return _error(401, "missing or invalid signature")
    return _store(
        platform, connector.webhook_signature_header, body, headers, connector
    )


def _store(
    platform: str,
    signature_header: str,
    body: bytes,
    headers: dict[str, str],
    connector: Connector,
) -> HttpResponse:
    digest = hashlib.sha256(
        headers.get(signature_header.lower(), "").encode()
    ).hexdigest()
    try:
        json.loads(body)
        key = connector.webhook_event_id(body)
        malformed = ""
    except (ValueError, KeyError, TypeError) as exc:
        key = "malformed-" + hashlib.sha256(body).hexdigest()
        malformed = f"not a valid {platform} delivery: {exc}"
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                platform=platform,
                event_key=key[:128],
                body=body,
                headers_digest=digest,
                status=WebhookEvent.Status.MALFORMED
                if malformed
                else WebhookEvent.Status.RECEIVED,
                error=malformed,
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    if malformed:
        return _error(400, malformed)
    from social.tasks import process_webhook_event

    transaction.on_commit(lambda: process_webhook_event.delay(event.pk))
    return JsonResponse({"status": "accepted"})
