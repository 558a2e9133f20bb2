"""Webhook receivers: verify, store raw, enqueue, answer fast (DESIGN §2, invariant 2).

A delivery is acknowledged only after its raw body is committed as a WebhookEvent;
processing happens in `social.process_webhook_event`. Stored means processed: the
200 does not depend on the broker (a task that could not be queued is queued by the
sweep, `social.sweep_webhook_events`), and only a delivery that could not be stored
is refused, with 503 and Retry-After, so that the platform retries it. A replayed
delivery (same event key) is acknowledged, and queued again while the first copy is
still unprocessed. Unsigned or wrongly signed requests get 401 and are not stored;
signed but malformed bodies get 400 and are kept.
"""

import hashlib
import json
import logging
from functools import partial

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from social.config import app_secrets
from social.connectors import get_connector
from social.connectors.base import Connector, ConnectorError
from social.models import WebhookEvent
from tenants.outages import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)

# Events a replayed delivery queues again: not processed yet, or given up.
PENDING = (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED)
STORE_FAILED = "the delivery could not be stored right now; retry later"


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def delivery_answer(status: int, payload: dict[str, str]) -> JsonResponse:
    """The JSON answer to a delivery; a 503 tells the platform when to retry."""
    response = JsonResponse(payload, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


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
        return delivery_answer(status, acknowledgement)
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
        return _replayed(platform, key[:128])
    except DatabaseError:
        # Not stored: only now may the platform be refused, so that it retries.
        logger.warning("%s delivery not stored: database unavailable", platform)
        return 503, {"error": STORE_FAILED}
    if malformed:
        return 400, {"error": malformed}
    transaction.on_commit(partial(enqueue_event, event.pk))
    return 200, {"status": "accepted"}


def _replayed(platform: str, key: str) -> tuple[int, dict[str, str]]:
    """A delivery stored before: acknowledged; queued again if still unprocessed.

    A platform retries what it thinks failed (a timeout, a 5xx from a proxy): when
    the first copy is still `received` (its task was lost with a dead worker or a
    broker outage) or gave up (`failed`), the retry processes it. Processing is
    idempotent, so a copy queued twice records nothing twice.
    """
    try:
        event = (
            WebhookEvent.objects.filter(platform=platform, event_key=key)
            .only("pk", "status")
            .first()
        )
    except DatabaseError:
        return 200, {"status": "duplicate"}
    if event is not None and event.status in PENDING:
        enqueue_event(event.pk)
        return 200, {"status": "accepted"}
    return 200, {"status": "duplicate"}


def enqueue_event(event_id: int) -> bool:
    """Queue `social.process_webhook_event` for a stored event; False (logged) when
    the broker refused it: the event stays `received` and the sweep
    (`social.sweep_webhook_events`) queues it later. Never raises."""
    from social.tasks import process_webhook_event

    try:
        process_webhook_event.delay(event_id)
    except Exception as exc:  # any broker failure: the stored event is safe
        logger.warning(
            "webhook event %s stored but not queued (%s); the sweep will queue it",
            event_id,
            exc,
        )
        return False
    return True
