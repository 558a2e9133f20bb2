"""Domain errors of the care core. Each carries a stable code and a message that tells
the agent why and what to do instead. The REST API maps them to HTTP in one handler."""

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404

from helpdesk.outage import outage_body
from tenants.exceptions import WorkspaceError
from tenants.outages import RETRY_AFTER_SECONDS, outage_service

if TYPE_CHECKING:
    from rest_framework.response import Response

logger = logging.getLogger(__name__)


class HelpdeskError(Exception):
    code: ClassVar[str] = "helpdesk_error"
    http_status: ClassVar[int] = 400

    def __init__(
        self, message: str, *, field: str | None = None, **details: object
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class ReplyInvalid(HelpdeskError):
    """Empty text, text over the platform's limit, or an unusable visibility."""

    code = "reply_invalid"


class ConversationResolved(HelpdeskError):
    code = "conversation_resolved"
    http_status = 409


class PrivateFirstRefused(HelpdeskError):
    """R2: a public conversation gets its first answer in public."""

    code = "public_first"
    http_status = 409


class PublicReplyLimitReached(HelpdeskError):
    """R3: the brand's public reply limit for this thread is used up."""

    code = "public_reply_limit"
    http_status = 409


class AnotherReplyPending(HelpdeskError):
    """R7: only one public answer per conversation may be in its hold at a time."""

    code = "reply_pending"
    http_status = 409


class PlatformRefuses(HelpdeskError):
    """The platform cannot do this (capability flags); the message says what can."""

    code = "platform_refuses"
    http_status = 409


class ReplyNeedsConfirmation(HelpdeskError):
    """Warnings the agent must confirm (near-duplicate, stale view); nothing sent."""

    code = "needs_confirmation"
    http_status = 409

    def __init__(self, warnings: dict[str, str]) -> None:
        super().__init__(" ".join(warnings.values()), warnings=warnings)
        self.warnings = warnings


class MessageNotEditable(HelpdeskError):
    """Undo, edit and retry need the message in a state that allows them."""

    code = "message_not_editable"
    http_status = 409


class InvalidTransition(HelpdeskError):
    code = "invalid_transition"
    http_status = 409


def _field_messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [
            f"{key}: {message}"
            for key, value in detail.items()
            for message in _field_messages(value)
        ]
    if isinstance(detail, list):
        return [message for item in detail for message in _field_messages(item)]
    return [str(detail)]


def _error_body(
    code: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "fields": fields or {},
        "details": details or {},
    }


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> "Response | None":
    """The one translation of errors to HTTP for the REST API.

    Every error answers `{"code", "message", "fields", "details"}`: domain errors
    with their own code and status, validation errors as 400 with the messages per
    field, and DRF's own errors (401, 403, 404, 405, 415, 429 with Retry-After)
    with a stable code. An outage of the database, Redis or the broker is 503
    `service_unavailable` with Retry-After and `details.service`. Anything else is
    left to Django (a 500).
    """
    # Imported here: DRF's settings import modules that import this one.
    from rest_framework import exceptions
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_exception_handler

    service = outage_service(exc)
    if service is not None:
        logger.warning("API call answered 503, %s unavailable: %r", service, exc)
        return Response(
            outage_body(service),
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, HelpdeskError):
        fields = {exc.field: [exc.message]} if exc.field else {}
        details = {k: v for k, v in exc.details.items() if _jsonable(v)}
        return Response(
            _error_body(exc.code, exc.message, fields, details), status=exc.http_status
        )
    if isinstance(exc, WorkspaceError):
        # The tenancy layer's refusals: a field's value (400) or the state (409).
        fields = {exc.field: [exc.message]} if exc.field else {}
        code, status = ("invalid", 400) if exc.field else ("refused", 409)
        return Response(_error_body(code, exc.message, fields), status=status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"": exc.detail}
        fields = {
            key: _field_messages(value)
            for key, value in detail.items()
            if key not in {"", "non_field_errors"}
        }
        general = _field_messages(detail.get("non_field_errors", [])) + _field_messages(
            detail.get("", [])
        )
        message = " ".join(general) or "Some fields need attention."
        response.data = _error_body("invalid", message, fields)
        return response
    assert isinstance(exc, exceptions.APIException)  # noqa: S101 - DRF handled it
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "error"
    code = {"throttled": "rate_limited"}.get(code, code)
    response.data = _error_body(code, str(exc.detail))
    return response


def _jsonable(value: object) -> bool:
    return isinstance(value, str | int | float | bool | dict | list | type(None))
