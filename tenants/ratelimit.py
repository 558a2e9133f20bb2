"""A fixed-window request limit on the Django cache, failing open.

Used by the public status endpoint and the Sandbox's API. A limit protects the
servers, it does not guard data, so when the cache cannot be reached the request is
allowed and a warning logged: an outage of Redis must not refuse every call.
"""

import hashlib
import logging
import time

from django.core.cache import cache

from tenants.outages import CACHE_ERRORS

logger = logging.getLogger(__name__)


def fixed_window_wait(
    scope: str,
    ident: str,
    *,
    limit: int,
    window: int = 60,
    now: float | None = None,
) -> int | None:
    """Count one request of `ident` in the current window of `window` seconds.

    Returns the seconds until the window ends when this request is over `limit`,
    else None (also when the cache is unreachable). `ident` is hashed, so it may
    be a token or an address; `now` is the epoch time (default: the clock's).
    """
    now = time.time() if now is None else now
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    key = f"{scope}:rl:{digest}:{int(now // window)}"
    try:
        cache.add(key, 0, timeout=window + 10)
        used = cache.incr(key)
    except CACHE_ERRORS as error:
        logger.warning("%s rate limit not applied, cache unavailable: %r", scope, error)
        return None
    if used > limit:
        return max(1, window - int(now % window))
    return None
