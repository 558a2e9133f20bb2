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
    if request.method == "POST":
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(400, "Content-Length is not a number")
        if declared > settings.WEBHOOK_MAX_BYTES:
            return _error(413, f"body over {settings.WEBHOOK_MAX_BYTES} bytes")
        headers = {key.lower(): value for key, value in request.headers.items()}
        status, acknowledgement = accept_delivery(platform, request.body, headers)
        return JsonResponse(acknowledgement, status=status)
    if platform not in settings.SOCIAL_PLATFORMS:
        return _error(404, "unknown platform")
    try:
        connector = get_connector(platform)
    except ConnectorError:
        return _error(404, "unknown platform")
    if not connector.capabilities.webhooks:
        # Reddit, Mastodon and Bluesky are polled; nothing is delivered here.
        return _error(404, "this platform sends no webhooks")
    params = {key: str(value) for key, value in request.GET.items()}
    status, answer = connector.webhook_challenge(params, app_secrets(platform))
    content_type = "application/json" if answer.startswith("{") else "text/plain"
    return HttpResponse(answer, status=status, content_type=content_type)


def accept_delivery(
    platform: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str]]:
    """Verify one POSTed delivery, store it raw and enqueue it: (status, answer).

    The whole acknowledgement path, shared by the Django view and the ASGI fast
    path (social/webhook_asgi.py). `headers` have lower-case names. 404 for a
    platform without webhooks here, 413 over WEBHOOK_MAX_BYTES, 401 for a missing
    or wrong signature (nothing stored), 400 for a signed but malformed body
    (stored as malformed), 200 otherwise (a replay is acknowledged, not stored).
    Opens its own short transaction; enqueues `social.process_webhook_event` on
    commit.
    """
    if platform not in settings.SOCIAL_PLATFORMS:
        return 404, {"error": "unknown platform"}
    try:
        connector = get_connector(platform)
    except ConnectorError:
        return 404, {"error": "unknown platform"}
    if not connector.capabilities.webhooks:
        return 404, {"error": "this platform sends no webhooks"}
    if len(body) > settings.WEBHOOK_MAX_BYTES:
        return 413, {"error": f"body over {settings.WEBHOOK_MAX_BYTES} bytes"}
    if not connector.verify_webhook(body, headers, app_secrets(platform)):
        return 401, {"error": "missing or invalid signature"}
    return _store(
        platform, connector.webhook_signature_header, body, headers, connector
    )


def _store(
    platform: str,
    signature_header: str,
    body: bytes,
    headers: dict[str, str],
    connector: Connector,
) -> tuple[int, dict[str, str]]:
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
        return 200, {"status": "duplicate"}
    if malformed:
        return 400, {"error": malformed}
    from social.tasks import process_webhook_event

    transaction.on_commit(lambda: process_webhook_event.delay(event.pk))
    return 200, {"status": "accepted"}
