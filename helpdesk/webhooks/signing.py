"""The webhook body and its signature, and the check integrators run on their side.

Body: compact JSON `{"id", "type", "created_at", "tenant", "data"}`.
Header: `Earshot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where the HMAC
is over `f"{t}.".encode() + body` under the endpoint's secret. Signing the timestamp
with the body lets a receiver refuse replays older than a few minutes. While a
rotated secret is in its grace period, the header carries one `v1=` per secret.

`verify_signature` is the snippet the README shows; it depends on the standard
library only, so integrators can copy it as is.
"""

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

DEFAULT_TOLERANCE = 300  # seconds


def envelope(
    *,
    event_id: str,
    event_type: str,
    created_at: datetime,
    tenant_slug: str,
    data: dict[str, Any],
) -> bytes:
    """The exact bytes POSTed for one event (stable across retries)."""
    body = {
        "id": event_id,
        "type": event_type,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "tenant": tenant_slug,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(
    secrets: Sequence[str], body: bytes, *, timestamp: int | None = None
) -> str:
    """The Earshot-Signature value for `body`: one v1 per secret, newest first."""
    t = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={t}", *(f"v1={_digest(secret, t, body)}" for secret in secrets)]
    return ",".join(parts)


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """Whether `header` (Earshot-Signature) signs the raw `body` under `secret`.

    False when the header is malformed, the timestamp is more than `tolerance`
    seconds away from now (a replay), or no v1 signature matches. Compare against
    the raw request body, before any JSON parsing.
    """
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, raw).encode()
    return any(
        hmac.compare_digest(expected, candidate.encode()) for candidate in candidates
    )
