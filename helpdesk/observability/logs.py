"""Structured logs: request and task ids, JSON lines, and redaction.

Every HTTP request gets an id (`RequestIdMiddleware`; the webhook fast path sets
its own in helpdesk.observability.asgi): the caller's `X-Request-ID` when it is
sane (1-128 of letters, digits and `._:-`), else a new one; it is echoed in the
response's X-Request-ID. A Celery task's log lines carry its task id (the
task_prerun/task_postrun signals). Both are ContextVars, so they follow a request
through ASGI's threads and stay apart between concurrent requests.

With LOG_FORMAT=json each line is one JSON object: time (UTC, ISO 8601), level,
logger, message, tenant_id (the open tenant's, when one is open), request_id,
task_id, and exc (the formatted exception, when there is one). Both formats pass
the message and the exception text through `redact`: bearer and basic
credentials, Earshot API tokens, secret-looking key=value pairs, credentials in
URLs, email addresses, and message bodies in JSON (`"text": ...`) are replaced
before anything is written.
"""

import itertools
import json
import logging
import os
import re
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REDACTED = "[redacted]"

_request_id: ContextVar[str | None] = ContextVar("earshot_request_id", default=None)
_task_id: ContextVar[str | None] = ContextVar("earshot_task_id", default=None)
_request_tenant: ContextVar[int | None] = ContextVar(
    "earshot_request_tenant", default=None
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization credentials (Bearer, Basic), wherever they appear.
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=:-]{4,}"), rf"\1{REDACTED}"),
    (re.compile(r"\b(Basic\s+)[A-Za-z0-9+/]{8,}={0,2}"), rf"\1{REDACTED}"),
    # Earshot's own API tokens (esk_...), even without a scheme in front.
    (re.compile(r"\besk_[A-Za-z0-9_-]+"), REDACTED),
    # user:password@ in URLs (database, broker, Redis).
    (re.compile(r"(://)[^/\s:@]*:[^/\s@]+@"), rf"\1{REDACTED}@"),
    # key=value and "key": "value" pairs whose key says secret.
    (
        re.compile(
            r"(?i)(\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|authorization"
            r"|signature|cookie|session)[\w-]*[\"']?\s*[:=]\s*)"
            r"(?!(?i:bearer|basic)\s|\[redacted\])(\"[^\"]*\"|'[^']*'|[^\s,;&}\"']+)"
        ),
        rf"\1{REDACTED}",
    ),
    # Message bodies in JSON payloads.
    (
        re.compile(
            r"(?i)(\"(?:text|body|message|content|caption)\"\s*:\s*)\"(?:[^\"\\]|\\.)*\""
        ),
        rf'\1"{REDACTED}"',
    ),
    # Email addresses.
    (
        re.compile(
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
        REDACTED,
    ),
)


def redact(text: str) -> str:
    """`text` with credentials, secrets, email addresses and message bodies
    replaced by [redacted]."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def current_request_id() -> str | None:
    return _request_id.get()


def current_task_id() -> str | None:
    return _task_id.get()


def begin_request(header: str | None) -> tuple[str, Token[str | None]]:
    """Open a request's id (the caller's when sane, else a new one): (id, token to
    reset it with)."""
    if header and SANE_REQUEST_ID.fullmatch(header):
        request_id = header
    else:
        request_id = new_request_id()
    return request_id, _request_id.set(request_id)


# A new id is 32 hex digits (as uuid4().hex gave): 16 random ones drawn once per
# process, then a counter. os.urandom per request cost about 3 us on the bench
# machine and let go of the GIL on every request and webhook acknowledgement; the
# counter costs a fraction of that. Ids stay unique: the prefix (64 random bits)
# is drawn again in a forked child, and the counter never repeats in a process.
_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count()


def new_request_id() -> str:
    return f"{_id_prefix}{next(_id_counter):016x}"


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = itertools.count()


os.register_at_fork(after_in_child=_new_id_prefix)


def end_request(token: Token[str | None]) -> None:
    _request_id.reset(token)


class RequestIdMiddleware:
    """Sets the request id for the request's log lines and echoes it in the
    response. No database, one ContextVar: cheap on the API's hot path.

    The id is not reset when the response leaves: Django logs a 4xx/5xx response
    (django.request) after the whole middleware chain returned, and that line must
    carry it too. Under ASGI every request runs in a context of its own, so the id
    goes no further; a sync caller's next request sets its own. The request's
    tenant, once the tenant middleware resolved it, is remembered the same way.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        request_id = _begin(request)
        response: HttpResponseBase = self.get_response(request)
        return _end(request, response, request_id)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request_id = _begin(request)
        response: HttpResponseBase = await self.get_response(request)
        return _end(request, response, request_id)


def _begin(request: HttpRequest) -> str:
    _request_tenant.set(None)
    # request.headers would build the mapping of every header for this one.
    return begin_request(request.META.get(REQUEST_ID_META))[0]


def _end(
    request: HttpRequest, response: HttpResponseBase, request_id: str
) -> HttpResponseBase:
    tenant = getattr(request, "tenant", None)
    if tenant is not None:
        _request_tenant.set(tenant.pk)
    response[REQUEST_ID_HEADER] = request_id
    return response


def _tenant_id() -> int | None:
    from tenants.context import current_tenant_id

    tenant_id = current_tenant_id()
    return tenant_id if tenant_id is not None else _request_tenant.get()


class PlainFormatter(logging.Formatter):
    """The default line format, with `redact` applied to the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "tenant_id": _tenant_id(),
            "request_id": _request_id.get(),
            "task_id": _task_id.get(),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


# A task run inside another (eager tasks) restores the outer task's id after it.
_task_tokens: dict[str, Token[str | None]] = {}


def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _task_tokens[task_id] = _task_id.set(task_id)


def _task_finished(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is None:
        return
    try:
        _task_id.reset(token)
    except ValueError:  # set in another context: forget it there
        _task_id.set(None)


def connect_task_signals() -> None:
    """Give each Celery task's log lines its task id (idempotent)."""
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_started, weak=False, dispatch_uid="earshot-log-task")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="earshot-log-task")
