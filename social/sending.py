"""Platform calls of one delivery batch, made concurrently, within each account's
rate limit and by one shared deadline.

A worker sends a batch of claimed replies through a bounded thread pool of its own
process (DELIVERY_CONCURRENCY threads; the calls wait on the network, and
social.http's pooled client is thread-safe). The threads only talk HTTP: the
caller claims and records in its own thread and transactions.

Rate limits. A connector may declare the platform's limit on an account's sends
(`Connector.send_limit`). Each call first takes a slot in that limit's current
window, counted in the Django cache (shared by every worker process, as the
platform counts them across all of Earshot's calls); when the window is used up
the call waits for the next one instead of failing, as long as the wait ends
before the batch's deadline. A wait that would pass it ends the call without
sending, as a transient error with `retry_after` the wait: the delivery is retried
then. The platform's own 429 (with Retry-After) stays the last word.

Platform trouble. An account whose platform answered 429 or 5xx is paused: its
Retry-After (seconds or an HTTP-date, social.http), else an exponential backoff
with jitter over its consecutive failures (PAUSE_CAP at most), counted in the
Django cache like the limits, the moment the answer comes. Delivery looks before
a batch's calls and polling before a poll (`pauses`), and neither calls the
platform for a paused account;
its first success ends the pause (`resume`). Calls of one batch already made
when a refusal comes back are not recalled.

The deadline. Every call of a batch ends by one time (`end`, time.monotonic()),
the claim's renewal plus delivery.SEND_BUDGET (see helpdesk.services.delivery
CLAIM_LEASE): a call that would start with less than MIN_CALL_SECONDS left is not
made at all.
"""

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from social import http
from social.connectors.base import AccountRef, ConnectorError, SendLimit
from tenants.outages import CACHE_ERRORS
from tenants.ratelimit import fixed_window_take, fixed_window_wait

logger = logging.getLogger(__name__)


# A call starts only with at least this much of the batch's deadline left.
MIN_CALL_SECONDS = 1.0
# A batch takes its calls' send-limit slots in bulk only while the window has this
# many seconds left (the calls made later than that are counted one by one).
BULK_MARGIN = 5.0
DEFAULT_CONCURRENCY = 32
# The longest pause of an account after 5xx answers without a Retry-After.
PAUSE_CAP = 30.0
# How long the cache remembers an account's failures after its pause ends.
PAUSE_MEMORY = 3600

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def concurrency() -> int:
    return max(1, int(getattr(settings, "DELIVERY_CONCURRENCY", DEFAULT_CONCURRENCY)))


def pool() -> ThreadPoolExecutor:
    """This process's pool (a forked pool child makes its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(
                max_workers=concurrency(), thread_name_prefix="delivery"
            )
            _pool_pid = os.getpid()
        return _pool


@dataclass(frozen=True)
class Call[T]:
    """One platform call for `account`; `limit` is the account's send limit to keep;
    `account_id` (its SocialAccount) is paused at once when the platform answers
    429 or 5xx, so other workers' batches hold off without waiting for this one."""

    account: AccountRef
    run: Callable[[], T]
    limit: SendLimit | None = None
    account_id: int | None = None


@dataclass(frozen=True)
class Outcome[T]:
    """A call's value, or the ConnectorError it raised (or was ended with)."""

    value: T | None = None
    error: ConnectorError | None = None
    attempted: bool = True  # False: ended before calling the platform


def limit_key(account: AccountRef, limit: SendLimit) -> str:
    return f"{account.platform}:{account.external_id}:{limit.bucket}"


def take_slot(account: AccountRef, limit: SendLimit, *, end: float) -> float | None:
    """Take one request in the account's current window, waiting for the next
    window while this one is used up. None once taken; else the seconds still to
    wait, when waiting would pass `end`."""
    key = limit_key(account, limit)
    while True:
        wait = fixed_window_wait(
            "platform-send", key, limit=limit.requests, window=limit.per_seconds
        )
        if wait is None:
            return None
        # The window ends at the next multiple of per_seconds (epoch time).
        left = limit.per_seconds - (time.time() % limit.per_seconds) + 0.01
        if time.monotonic() + left > end - MIN_CALL_SECONDS:
            return left
        logger.info("send limit of %s used up; waiting %.2f s", key, left)
        time.sleep(left)


def take_slots(calls: Sequence[Call[object]]) -> set[int]:
    """Take the send-limit slots of a batch's calls per account at once (one counter
    update per account instead of one per call): the indexes of the calls whose
    slot is taken. The others take theirs one by one (`take_slot`), waiting for a
    later window. Only while the window has BULK_MARGIN seconds left, so the calls
    slotted now reach the platform, in the normal case, inside the window they were
    counted in (the platform's own 429 stays the last word)."""
    groups: dict[str, tuple[SendLimit, list[int]]] = {}
    for index, call in enumerate(calls):
        limit = call.limit
        if limit is None or limit.per_seconds < 2 * BULK_MARGIN:
            continue
        if limit.per_seconds - time.time() % limit.per_seconds < BULK_MARGIN:
            continue
        key = limit_key(call.account, limit)
        groups.setdefault(key, (limit, []))[1].append(index)
    taken: set[int] = set()
    for key, (limit, indexes) in groups.items():
        granted = fixed_window_take(
            "platform-send",
            key,
            count=len(indexes),
            limit=limit.requests,
            window=limit.per_seconds,
        )
        taken.update(indexes[:granted])
    return taken


def _attempt[T](call: Call[T], end: float, *, slotted: bool = False) -> Outcome[T]:
    if call.limit is not None and not slotted:
        wait = take_slot(call.account, call.limit, end=end)
        if wait is not None:
            return Outcome(
                error=ConnectorError(
                    "The account's rate limit on the platform is used up for now.",
                    retry_after=wait,
                ),
                attempted=False,
            )
    if time.monotonic() > end - MIN_CALL_SECONDS:
        return Outcome(
            error=ConnectorError("No time was left to call the platform."),
            attempted=False,
        )
    try:
        with http.deadline_at(end):
            return Outcome(value=call.run())
    except ConnectorError as error:
        if call.account_id is not None and platform_trouble(error):
            pause(call.account_id, error)
        return Outcome(error=error)


def run_all[T](calls: Sequence[Call[T]], *, end: float) -> list[Outcome[T]]:
    """Make the calls, concurrently when there are several; outcomes in call order.

    Anything but a ConnectorError (a bug, or a test's simulated crash) is raised
    once every call has ended.
    """
    if len(calls) <= 1:
        return [_attempt(call, end) for call in calls]
    slotted = take_slots(calls)
    if concurrency() == 1:
        return [
            _attempt(call, end, slotted=index in slotted)
            for index, call in enumerate(calls)
        ]
    futures: list[Future[Outcome[T]]] = [
        pool().submit(_attempt, call, end, slotted=index in slotted)
        for index, call in enumerate(calls)
    ]
    outcomes: list[Outcome[T]] = []
    crash: BaseException | None = None
    for future in futures:
        try:
            outcomes.append(future.result())
        except BaseException as exc:
            crash = crash or exc
            outcomes.append(Outcome(error=ConnectorError(repr(exc))))
    if crash is not None:
        raise crash
    return outcomes


def platform_trouble(error: ConnectorError) -> bool:
    """The platform answered that it cannot serve us now: 429 or a 5xx."""
    return error.status is not None and (error.status == 429 or error.status >= 500)


def _pause_key(account_id: int) -> str:
    return f"platform-pause:{account_id}"


def pauses(account_ids: Iterable[int]) -> dict[int, float]:
    """The accounts (SocialAccount ids) with a pause on record: seconds still to
    wait (0 or less: over, but not yet ended by a success). One cache round trip;
    an unreachable cache pauses nothing (the platform's 429 still applies)."""
    keys = {_pause_key(account_id): account_id for account_id in set(account_ids)}
    if not keys:
        return {}
    try:
        found = cache.get_many(list(keys))
    except CACHE_ERRORS as error:
        logger.warning("account pauses not read, cache unavailable: %r", error)
        return {}
    now = time.time()
    return {keys[key]: until - now for key, (until, _failures) in found.items()}


def backoff(failures: int) -> float:
    """Exponential backoff with jitter: about 2**failures seconds, PAUSE_CAP at
    most, each wait 0.8 to 1.2 times that so accounts do not return together."""
    base = min(PAUSE_CAP, 2.0 ** max(1, failures))
    return base * (0.8 + 0.4 * random.random())  # noqa: S311 - jitter, not secrets


# Concurrent calls of one batch pause the same account: one read-modify-write at a
# time in this process, so a short 5xx pause cannot overwrite a 429's longer one.
# (Across processes the race remains; the batch's record extends the pause to its
# longest Retry-After again: `pause(..., count=False)`.)
_pause_lock = threading.Lock()


def pause(account_id: int, error: ConnectorError, *, count: bool = True) -> float:
    """Pause the account after the platform refused or failed a call: for the
    error's Retry-After, else `backoff` of its consecutive failures; never shorter
    than a pause already running. `count=False`: only extend the pause, as a
    repeat of a failure already counted. Returns the seconds paused."""
    with _pause_lock:
        return _pause(account_id, error, count=count)


def _pause(account_id: int, error: ConnectorError, *, count: bool) -> float:
    key = _pause_key(account_id)
    try:
        previous: tuple[float, int] | None = cache.get(key)
    except CACHE_ERRORS as error_:
        logger.warning("account %s not paused, cache unavailable: %r", key, error_)
        return 0.0
    until_before, failures = previous if previous is not None else (0.0, 0)
    failures += 1 if count or not failures else 0
    wait = error.retry_after if error.retry_after is not None else backoff(failures)
    now = time.time()
    until = max(now + wait, until_before)
    try:
        cache.set(key, (until, failures), timeout=int(until - now) + PAUSE_MEMORY)
    except CACHE_ERRORS as error_:
        logger.warning("account %s not paused, cache unavailable: %r", key, error_)
    return until - now


def resume(account_ids: Iterable[int]) -> None:
    """End the accounts' pauses (a call worked): their failures count from 0."""
    keys = [_pause_key(account_id) for account_id in set(account_ids)]
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except CACHE_ERRORS as error:
        logger.warning("account pauses not ended, cache unavailable: %r", error)
