"""What counts as an outage of a backing service, and which service it is.

An outage is an error that says PostgreSQL (or SQLite: "database is locked"), Redis
(cache, rate limits, channel layer) or the Celery broker cannot be reached now; it
passes when the service returns. Requests answer it with a 503 and Retry-After
(helpdesk/outage.py); code that only uses a service as an optimisation catches it
and carries on without it. Kept in `tenants` (which imports nothing of ours) so
every layer can use the same definition.
"""

from typing import Literal

import kombu.exceptions
import redis.exceptions
from django.db import InterfaceError, OperationalError

Service = Literal["database", "cache", "broker"]

DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
# RedisError also covers a replica's READONLY and OOM answers during a failover.
CACHE_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.RedisError, OSError)
BROKER_ERRORS: tuple[type[Exception], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
)

# How long a client is asked to wait before retrying a request an outage refused.
RETRY_AFTER_SECONDS = 30


def outage_service(exc: BaseException | None) -> Service | None:
    """The service whose outage `exc` (or an exception it was raised from) reports.

    Only connection-level errors count: a Redis "connection refused" is an outage,
    a Redis wrong-type answer is a bug, and so is any database error other than
    OperationalError / InterfaceError.
    """
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, DATABASE_ERRORS):
            return "database"
        if isinstance(exc, kombu.exceptions.OperationalError):
            return "broker"
        if isinstance(
            exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
        ):
            return "cache"
        exc, seen = exc.__cause__, seen + 1
    return None
