"""Who is online: an agent is online for 60 s after its last heartbeat.

Production keeps presence in Redis (one sorted set per tenant, shared by every ASGI
process); the single-process demo keeps it in memory. Presence is a hint: while
Redis is unreachable nobody counts as online (no auto-assignment, no presence
list) and a warning is logged, but nothing that writes fails for it.
"""

import logging
import threading
import time
from functools import cache

from django.conf import settings

from helpdesk.cache import PresenceRead, read_ahead
from tenants.outages import CACHE_ERRORS

logger = logging.getLogger(__name__)

ONLINE_SECONDS = 60


class MemoryPresence:
    def __init__(self) -> None:
        self._seen: dict[int, dict[int, float]] = {}
        self._lock = threading.Lock()

    def touch(self, tenant_id: int, user_id: int) -> bool:
        """Record a heartbeat; True when the agent was offline before."""
        now = time.time()
        with self._lock:
            seen = self._seen.setdefault(tenant_id, {})
            was_online = now - seen.get(user_id, 0.0) < ONLINE_SECONDS
            seen[user_id] = now
        return not was_online

    def leave(self, tenant_id: int, user_id: int) -> None:
        with self._lock:
            self._seen.get(tenant_id, {}).pop(user_id, None)

    def online(self, tenant_id: int) -> set[int]:
        cutoff = time.time() - ONLINE_SECONDS
        with self._lock:
            seen = self._seen.get(tenant_id, {})
            return {user for user, at in seen.items() if at >= cutoff}


class RedisPresence:
    def __init__(self, url: str) -> None:
        import redis

        # Bounded waits: a Redis that stopped answering must not hold a request.
        self.url = url
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2
        )

    @staticmethod
    def key(tenant_id: int) -> str:
        """The tenant's sorted set: agent ids scored by their last heartbeat."""
        return f"earshot:presence:t{tenant_id}"

    @staticmethod
    def cutoff() -> float:
        """The oldest heartbeat that still counts as online."""
        return time.time() - ONLINE_SECONDS

    @staticmethod
    def members(reply: list[bytes]) -> set[int]:
        """The agent ids of a ZRANGEBYSCORE reply."""
        return {int(str(member, "ascii")) for member in reply}

    def touch(self, tenant_id: int, user_id: int) -> bool:
        """Record a heartbeat; True when the agent was offline before (False when
        Redis is unreachable)."""
        now = time.time()
        key = self.key(tenant_id)
        pipe = self._redis.pipeline()
        pipe.zscore(key, user_id)
        pipe.zadd(key, {str(user_id): now})
        pipe.zremrangebyscore(key, 0, now - 24 * 3600)
        pipe.expire(key, 24 * 3600)
        try:
            previous = pipe.execute()[0]
        except CACHE_ERRORS as error:
            logger.warning("presence not recorded, Redis unavailable: %r", error)
            return False
        return previous is None or now - float(previous) >= ONLINE_SECONDS

    def leave(self, tenant_id: int, user_id: int) -> None:
        try:
            self._redis.zrem(self.key(tenant_id), user_id)
        except CACHE_ERRORS as error:
            logger.warning("presence not cleared, Redis unavailable: %r", error)

    def online(self, tenant_id: int) -> set[int]:
        """Agents seen in the last ONLINE_SECONDS; nobody while Redis is away."""
        key = self.key(tenant_id)
        ahead = read_ahead()
        try:
            read = None if ahead is None else ahead.online(self.url, key)
            if read is not None:
                return read
            members = self._redis.zrangebyscore(key, self.cutoff(), "+inf")
        except CACHE_ERRORS as error:
            logger.warning("presence unknown, Redis unavailable: %r", error)
            return set()
        return self.members(members)  # type: ignore[arg-type]


Presence = MemoryPresence | RedisPresence


@cache
def presence_store() -> Presence:
    """The process's presence store: Redis when REDIS_URL is set, else memory."""
    url = getattr(settings, "REDIS_URL", "")
    return RedisPresence(url) if url else MemoryPresence()


def read_target(tenant_id: int) -> PresenceRead | None:
    """What helpdesk.cache.reading_ahead needs to read the tenant's online agents
    in its round trip (None when presence is not in Redis: the demo's memory)."""
    store = presence_store()
    if not isinstance(store, RedisPresence):
        return None
    return PresenceRead(
        store.url, store.key(tenant_id), RedisPresence.cutoff(), RedisPresence.members
    )
