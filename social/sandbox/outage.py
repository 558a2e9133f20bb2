"""The Sandbox's outage switch: for N seconds the network answers its API with 429
(with Retry-After) and/or 5xx, as a real platform does in a bad hour.

Turned on by `manage.py sandbox_outage`, the operator admin (/admin/, Sandbox:
Outages) or `start_outage()`; every refused call is logged (OutageHit) so a test
can check that clients waited as told. Each server process reads the switch at
most once a second (`current_outage`), so the normal path costs no query per call.
"""

import math
import random
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.http import http_date

from social.sandbox.models import Grant, Outage, OutageHit

# How long a server process trusts what it last read of the switch.
RECHECK_SECONDS = 1.0
_seen: tuple[float, Outage | None] = (0.0, None)


def start_outage(*, mode: str, seconds: float, retry_after: int = 30) -> Outage:
    """Refuse every API call as `mode` says (Outage.Mode) for `seconds` from now;
    replaces a running outage. Server processes notice within RECHECK_SECONDS."""
    if mode not in Outage.Mode.values:
        raise ValueError(f"unknown outage mode {mode!r}")
    if seconds <= 0 or retry_after < 0:
        raise ValueError("seconds must be positive and retry_after not negative")
    now = timezone.now()
    outage, _ = Outage.objects.update_or_create(
        pk=1,
        defaults={
            "mode": mode,
            "retry_after": retry_after,
            "started_at": now,
            "until": now + timedelta(seconds=seconds),
        },
    )
    _forget()
    return outage


def end_outage() -> bool:
    """End the outage now; False when none was running."""
    ended = Outage.objects.filter(pk=1, until__gt=timezone.now()).update(
        until=timezone.now()
    )
    _forget()
    return bool(ended)


def _forget() -> None:
    global _seen
    _seen = (0.0, None)


def current_outage() -> Outage | None:
    """The running outage, as this process last read it (at most a second ago)."""
    global _seen
    checked, outage = _seen
    if time.monotonic() - checked > RECHECK_SECONDS:
        outage = Outage.objects.filter(pk=1).first()
        _seen = (time.monotonic(), outage)
    if outage is None or outage.until <= timezone.now():
        return None
    return outage


def refusal(outage: Outage, *, roll: float | None = None) -> tuple[int, str | None]:
    """The status and Retry-After of one refused call. Mixed: half 429 with
    delay-seconds, a quarter 503 with an HTTP-date, a quarter 500/502 with none."""
    dice = random.random() if roll is None else roll  # noqa: S311 - not security
    mode = outage.mode
    if mode == Outage.Mode.RATE_LIMITED or (mode == Outage.Mode.MIXED and dice < 0.5):
        return 429, str(outage.retry_after)
    if mode == Outage.Mode.MIXED and dice < 0.75:
        # An HTTP-date has whole seconds: rounded up, a client that waits until
        # it waits at least retry_after.
        return 503, http_date(math.ceil(time.time() + outage.retry_after))
    split = 0.875 if mode == Outage.Mode.MIXED else 0.5
    return (500 if dice < split else 502), None


def refuse(request: HttpRequest, outage: Outage) -> HttpResponse:
    """Answer a call during the outage, and log it."""
    status, retry_after = refusal(outage)
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip()
    grant_id = (
        Grant.objects.filter(access_token=token).values_list("pk", flat=True).first()
        if token
        else None
    )
    wait = None if retry_after is None else float(outage.retry_after)
    OutageHit.objects.create(
        grant_id=grant_id, path=request.path[:120], status=status, retry_after=wait
    )
    response = JsonResponse(
        {"error": "the network is having a bad time, try again later"}, status=status
    )
    if retry_after is not None:
        response["Retry-After"] = retry_after
    return response


ApiView = Callable[..., HttpResponse]


def guarded(view: ApiView) -> ApiView:
    """Refuse the view's calls while an outage runs."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        outage = current_outage()
        if outage is not None:
            return refuse(request, outage)
        return view(request, *args, **kwargs)

    return wrapped
