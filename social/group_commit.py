"""Group commit of webhook deliveries: one INSERT for the deliveries that arrive
together, one answer each after the commit, their tasks published afterwards.

The ASGI fast path (social/webhook_asgi.py) verifies a delivery on the event loop
and awaits `GroupCommit.store`. One committer thread per process takes every
delivery that is waiting, inserts them with one multi-row statement (one
transaction: all rows or none, `social.webhooks.store_deliveries`) and answers them
all once it has committed. The deliveries that arrive while that insert is in
flight (and within WEBHOOK_GROUP_WINDOW_MS, 0 by default) form the next group, so
under load a commit costs one round trip for many deliveries, and an idle server
commits each delivery at once.

- A failed insert answers 503 (with Retry-After) to every delivery of its group, so
  each platform retries and none is answered 200 without its row. A row the
  database rejects for its own content (not an outage) would fail its neighbours
  too: such a group is stored again one delivery at a time, so only that one is
  refused.
- Publishing the tasks (`social.process_webhook_event`, one for up to
  PUBLISH_SLICE new events) waits for nothing: the publisher thread hands them to
  the broker after the answers went out. While more deliveries wait, the
  committer holds the new ids back until PUBLISH_SLICE of them are due, so a
  burst's groups share task messages (a message costs this process a few hundred
  microseconds of CPU, as much as a dozen acknowledgements); once nothing waits,
  the ids go to the publisher at once, which lingers up to PUBLISH_LINGER_MS for
  the ids of the next groups, so a steady trickle of small groups (1,000
  deliveries/s) shares messages too, and a task starts a few milliseconds later. An
  event whose publish failed or was cut short by a restart stays `received`, and
  the sweep (`social.sweep_webhook_events`) queues it. With CELERY_TASK_ALWAYS_EAGER
  (the tests) the tasks run before the answer, as the Django view does.
"""

import asyncio
import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

from social.webhooks import REFUSED, Delivery, Stored, enqueue_events, store_deliveries

logger = logging.getLogger(__name__)

MAX_ROWS = 500  # WEBHOOK_GROUP_MAX_ROWS
MAX_BYTES = 4 * 1024 * 1024  # WEBHOOK_GROUP_MAX_BYTES: bodies in one statement
# Events per task message (one message, then the loop may run). A message costs
# the publisher about 300 us of CPU: 128 (was 64) about halves a burst's messages.
PUBLISH_SLICE = 128
# How long the publisher waits for more committed ids before it sends a message of
# fewer than PUBLISH_SLICE (WEBHOOK_PUBLISH_LINGER_MS). At a steady 1,000
# deliveries/s the groups are of one or two deliveries, and a message per group
# cost this process about 450 us of CPU per acknowledgement (in process, one
# delivery at a time: publisher 430-510 us, committer 210-260 us per group); a few
# milliseconds of linger let the groups of that time share one message, and a
# task starts at most that much later.
PUBLISH_LINGER_MS = 5


@dataclass(slots=True)  # not frozen: one is made per delivery, on the event loop
class _Waiting:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    # One of the two: an awaited future (`store`) or a callback (`submit`).
    future: "asyncio.Future[Stored] | None"
    callback: Callable[[Stored], None] | None = None


def _answer(items: Sequence[_Waiting], answers: Sequence[Stored]) -> None:
    """On the event loop: resolve the futures of one group (skip abandoned ones)
    and call its callbacks (one that fails is logged; the others still run)."""
    for item, answer in zip(items, answers, strict=True):
        future = item.future
        if future is not None:
            if not future.done():
                future.set_result(answer)
            continue
        try:
            item.callback(answer)  # type: ignore[misc]
        except Exception:
            logger.exception("a stored delivery's answer failed")


def store_group(deliveries: Sequence[Delivery]) -> list[Stored]:
    """Store one group on this thread's connection: the answers, in order; never
    raises. An outage refuses the whole group; any other failure of a group of
    several is retried one delivery at a time."""
    try:
        return store_deliveries(deliveries)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("%s deliveries not stored: %s", len(deliveries), exc)
        connections["default"].close()  # the next group starts on a fresh one
        return [REFUSED] * len(deliveries)
    except Exception:
        if len(deliveries) == 1:
            logger.exception("%s delivery not stored", deliveries[0].platform)
            connections["default"].close()
            return [REFUSED]
        logger.warning("group of %s not stored; storing one by one", len(deliveries))
    return [answer for delivery in deliveries for answer in store_group([delivery])]


class GroupCommit:
    """The process's committer and publisher threads (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._waiting: SimpleQueue[_Waiting] = SimpleQueue()
        self._publish: SimpleQueue[list[int]] = SimpleQueue()
        self._due: list[int] = []  # committed, queued, not yet handed to publish
        # Threads run in this process (os.getpid() is a system call on every
        # store; a fork clears the flag instead).
        self._running = False
        os.register_at_fork(after_in_child=self._forget_threads)

    def _forget_threads(self) -> None:
        self._running = False

    async def store(self, delivery: Delivery) -> Stored:
        """Store `delivery` with the others waiting; its answer once committed."""
        if not self._running:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored] = loop.create_future()
        self._waiting.put(_Waiting(delivery, loop, future))
        return await future

    def submit(
        self,
        delivery: Delivery,
        loop: asyncio.AbstractEventLoop,
        callback: Callable[[Stored], None],
    ) -> None:
        """Store `delivery` with the others waiting; `callback(answer)` runs on
        `loop` once it is committed (or refused). For a caller below any task
        (helpdesk.web_server's direct answers): no future, no task to wake."""
        if not self._running:
            self._start()
        self._waiting.put(_Waiting(delivery, loop, None, callback))

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked child has none of its parent's threads: start its own.
            self._waiting = SimpleQueue()
            self._publish = SimpleQueue()
            self._due = []
            for target, name in (
                (self._commit_forever, "webhook-group-commit"),
                (self._publish_forever, "webhook-publish"),
            ):
                threading.Thread(target=target, name=name, daemon=True).start()
            atexit.register(self.flush_publishing)
            self._pid = os.getpid()
            self._running = True

    def _next_group(self) -> list[_Waiting]:
        """Block for one delivery, then take all that wait, within the bounds."""
        group = [self._waiting.get()]
        window = getattr(settings, "WEBHOOK_GROUP_WINDOW_MS", 0) / 1000
        max_rows = getattr(settings, "WEBHOOK_GROUP_MAX_ROWS", MAX_ROWS)
        max_bytes = getattr(settings, "WEBHOOK_GROUP_MAX_BYTES", MAX_BYTES)
        size = len(group[0].delivery.body)
        closes = time.monotonic() + window
        while len(group) < max_rows and size < max_bytes:
            try:
                remaining = closes - time.monotonic()
                if remaining > 0:
                    item = self._waiting.get(timeout=remaining)
                else:
                    item = self._waiting.get_nowait()
            except Empty:
                break
            group.append(item)
            size += len(item.delivery.body)
        return group

    def _commit_forever(self) -> None:
        while True:
            group = self._next_group()
            try:
                self._commit(group)
            except Exception:  # never leave a delivery waiting, never stop
                logger.exception("group of %s deliveries not answered", len(group))
                self._hand_back(group, [REFUSED] * len(group))
            self._release_due()

    def _release_due(self) -> None:
        """Hand the committed ids to the publisher: all of them when no delivery
        waits (the next group would not come at once), else whole messages."""
        if not self._due:
            return
        if self._waiting.empty():
            due, self._due = self._due, []
        else:
            whole = len(self._due) - len(self._due) % PUBLISH_SLICE
            due, self._due = self._due[:whole], self._due[whole:]
        if due:
            self._publish.put(due)

    def _commit(self, group: Sequence[_Waiting]) -> None:
        answers = store_group([item.delivery for item in group])
        queue = [answer.queue for answer in answers if answer.queue is not None]
        eager = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))
        if eager:
            enqueue_events(queue)
        self._hand_back(group, answers)
        if queue and not eager:
            self._due += queue

    @staticmethod
    def _hand_back(group: Sequence[_Waiting], answers: Sequence[Stored]) -> None:
        if len(answers) != len(group):
            raise ValueError(f"{len(answers)} answers to {len(group)} deliveries")
        if not group:
            return
        first = group[0].loop
        handed: list[
            tuple[asyncio.AbstractEventLoop, Sequence[_Waiting], Sequence[Stored]]
        ]
        if all(item.loop is first for item in group):
            # The usual case (a server runs one event loop per process): the
            # group as it is, not copied item by item.
            handed = [(first, group, answers)]
        else:
            by_loop: dict[
                asyncio.AbstractEventLoop, tuple[list[_Waiting], list[Stored]]
            ] = {}
            for item, answer in zip(group, answers, strict=True):
                items, loop_answers = by_loop.setdefault(item.loop, ([], []))
                items.append(item)
                loop_answers.append(answer)
            handed = [(loop, *pair) for loop, pair in by_loop.items()]
        for loop, waiting, stored in handed:
            try:
                loop.call_soon_threadsafe(_answer, waiting, stored)
            except RuntimeError:  # that loop is closed: nobody waits any more
                continue

    def _publish_forever(self) -> None:
        while True:
            self._publish_ids(self._next_ids())

    def _next_ids(self) -> list[int]:
        """Block for committed ids, then take those that come within the linger,
        until a whole message's worth is there."""
        ids = self._publish.get()
        linger = getattr(settings, "WEBHOOK_PUBLISH_LINGER_MS", PUBLISH_LINGER_MS)
        closes = time.monotonic() + linger / 1000
        while len(ids) < PUBLISH_SLICE:
            try:
                remaining = closes - time.monotonic()
                if remaining > 0:
                    ids += self._publish.get(timeout=remaining)
                else:
                    ids += self._publish.get_nowait()
            except Empty:
                break
        return ids

    @staticmethod
    def _publish_ids(ids: list[int]) -> None:
        for start in range(0, len(ids), PUBLISH_SLICE):
            enqueue_events(ids[start : start + PUBLISH_SLICE])
            time.sleep(0)  # let the event loop answer between slices

    def flush_publishing(self) -> None:
        """At exit: publish what is still waiting (the sweep would, later)."""
        ids, self._due = self._due, []
        while True:
            try:
                ids += self._publish.get_nowait()
            except Empty:
                break
        if ids:
            self._publish_ids(ids)


group_commit = GroupCommit()
