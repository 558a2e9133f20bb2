"""Publishing after commit: channel-layer pushes and Celery tasks, by name.

The one place services hand work to the outside world once their transaction
commits. It imports no service, no task module and no event module: tasks are
looked up by their registered name when they are sent (Celery's registry), so
`helpdesk.tasks` (which imports the services) and the services that enqueue its
tasks no longer import each other. tests/helpdesk/test_import_cycles.py keeps it so.
"""

import asyncio
import importlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
from asgiref.sync import async_to_sync
from celery import current_app
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import _consistent_hash, decode_hosts
from django.db import transaction

from tenants import taskwire
from tenants.resp import PlainRedis, pack, read_reply
from tenants.tasks import enqueue

logger = logging.getLogger(__name__)

PUSH_TIMEOUT = 5.0  # seconds a sync caller waits for the layer to take a message


def task(name: str) -> Any:
    """The Celery task registered as `name` (e.g. "helpdesk.deliver_message").

    A process that has not imported the task yet (a command or script: Celery
    discovers tasks only when a worker starts) imports `<app>.tasks` of the
    name's app, where the project defines them, which registers it.
    """
    if name not in current_app.tasks:
        importlib.import_module(f"{name.split('.', 1)[0]}.tasks")
    return current_app.tasks[name]


def enqueue_task(name: str, *args: Any, swept_by: str | None, **options: Any) -> bool:
    """Publish task `name` now; False (and a warning) when the broker is down.

    On a plain Redis broker the message goes straight onto its queue
    (tenants.taskwire); anything that path does not cover, and any error it
    meets, goes through kombu (tenants.tasks.enqueue) as before.
    """
    found = task(name)
    if taskwire.publish(found, args, options):
        return True
    sent = enqueue(found, *args, swept_by=swept_by, **options)
    if sent:
        taskwire.learn(found)
    return sent


def enqueue_task_once(
    name: str,
    *args: Any,
    marker: str,
    ttl_ms: int,
    otherwise: Callable[[], bool],
    swept_by: str | None,
    **options: Any,
) -> bool:
    """Publish task `name` now unless a task for `marker` is pending: the
    marker, set in the broker's Redis when it is not (tenants.taskwire.mark),
    lasts `ttl_ms` or until the task clears it (clear_task_marker), which it
    does before it reads its work. False (and a warning) when the broker is
    down; the marker is then cleared, so the next caller tries again. When the
    marker cannot be used here (see taskwire.mark), `otherwise()` instead."""
    found = task(name)
    first = taskwire.mark(found, marker, ttl_ms)
    if first is None:
        return otherwise()
    if not first:
        return True
    if enqueue_task(name, *args, swept_by=swept_by, **options):
        return True
    taskwire.clear(found.app, marker)
    return False


def clear_task_marker(name: str, marker: str) -> bool:
    """Clear `marker` of task `name` (see enqueue_task_once); False when the
    broker did not answer."""
    return taskwire.clear(task(name).app, marker)


def enqueue_task_on_commit(
    name: str, *args: Any, swept_by: str | None, **options: Any
) -> None:
    """Publish task `name` once the transaction commits (nothing if it rolls back).

    A broker outage is logged, never raised: `swept_by` names the beat task that
    re-enqueues what was stored but not queued.
    """
    transaction.on_commit(
        partial(enqueue_task, name, *args, swept_by=swept_by, **options)
    )


def enqueue_each_on_commit(
    name: str, tenant_id: int, ids: Sequence[int], *, swept_by: str
) -> None:
    """On commit, publish task `name` once per id (args: tenant_id, id); stops at
    the first broker error (the rest would only wait for it too; the sweep finds
    them all still pending)."""

    def publish() -> None:
        for one in ids:
            if not enqueue_task(name, tenant_id, one, swept_by=swept_by):
                break

    if ids:
        transaction.on_commit(publish)


def on_commit(callback: Callable[[], Any]) -> None:
    """Run `callback` after the current transaction commits (at once outside one)."""
    transaction.on_commit(callback)


def send_control(group: str, message_type: str, **fields: Any) -> None:
    """A control message to consumers (e.g. close a revoked member's sockets)."""
    group_send(group, {"type": message_type, **fields})


def group_send(group: str, message: dict[str, Any]) -> None:
    """Send one message to a channel-layer group now; raises when the layer fails
    (helpdesk.events.send_to_group logs and swallows that for events)."""
    layer = get_channel_layer()
    if layer is None:
        return
    direct = _direct(layer)
    if direct is not None:
        direct.publish(group, [message])
        return
    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the consumers' event loop: send from that loop.
        async_to_sync(layer.group_send)(group, message)
        return
    _publisher().run(layer.group_send(group, message))


def group_send_many(
    group: str, messages: Sequence[dict[str, Any]], *, sent: list[int] | None = None
) -> None:
    """Send messages to a channel-layer group now, in order, with one hand-over to
    the publishing loop for all of them (a batch's events: one thread hop each
    was most of their cost). Raises at the first that fails; the later ones are
    not sent. `sent`, when given, gets the index of each message sent."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    direct = _direct(layer)
    if direct is not None:
        direct.publish(group, messages, sent=sent)
        return

    async def send_all() -> None:
        for index, message in enumerate(messages):
            await layer.group_send(group, message)
            if sent is not None:
                sent.append(index)

    if isinstance(layer, InMemoryChannelLayer):
        async_to_sync(send_all)()
        return
    _publisher().run(send_all())


class _Publisher:
    """A long-lived event loop on a daemon thread, for sends from sync code.

    `async_to_sync` in a thread without an event loop (a Celery worker, a command)
    makes a new loop per call, and channels-redis keeps its Redis connections per
    loop, so every push paid for a new loop and a new connection (about 8 ms on the
    2-core machine, where the publish itself takes 0.1-0.2 ms). Network layers
    publish from this one loop instead and keep their connections.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(
            target=self.loop.run_forever, name="earshot-layer-publisher", daemon=True
        ).start()

    def run(self, send: Coroutine[Any, Any, Any]) -> None:
        future = asyncio.run_coroutine_threadsafe(send, self.loop)
        try:
            future.result(timeout=PUSH_TIMEOUT)
        except TimeoutError:
            # An unreachable Redis can hang a connect: cancel the send, or it would
            # hold the shard's lock and every later push would queue behind it.
            future.cancel()
            raise


_publishers: dict[int, _Publisher] = {}
_publishers_lock = threading.Lock()


def _publisher() -> _Publisher:
    """This process's publisher (keyed by pid: a forked child starts its own)."""
    pid = os.getpid()
    with _publishers_lock:
        if pid not in _publishers:
            _publishers[pid] = _Publisher()
        return _publishers[pid]


class _DirectPublisher:
    """Group sends of a channels-redis pub/sub layer as plain PUBLISH commands from
    the calling thread.

    What the layer's own `group_send` does (the same channel name, shard, and
    serialized bytes, `RedisPubSubLoopLayer.group_send`), without handing the
    coroutine to the publishing loop's thread: that hand-over cost about 0.6 ms
    of CPU per reply's events here, the PUBLISH itself about 40 µs. No retry (a
    retried PUBLISH could arrive twice; a client that missed a push catches up by
    sequence) and PUSH_TIMEOUT on the socket, as the loop's sends wait for it.
    """

    def __init__(self, layer: RedisPubSubChannelLayer, hosts: list[dict[str, Any]]):
        self.layer = layer
        self.prefix = str(layer._kwargs.get("prefix", "asgi"))
        self.clients = [_publish_client(host["address"]) for host in hosts]

    def publish(
        self,
        group: str,
        messages: Sequence[dict[str, Any]],
        *,
        sent: list[int] | None = None,
    ) -> None:
        channel = f"{self.prefix}__group__{group}"
        client = self.clients[_consistent_hash(channel, len(self.clients))]
        for index, message in enumerate(messages):
            client.publish(channel, self.layer.serialize(message))
            if sent is not None:
                sent.append(index)


class _Publishing(Protocol):
    def publish(self, channel: str, message: bytes) -> Any: ...


def _publish_client(address: str) -> _Publishing:
    """A PUBLISH-only client of the Redis at `address`: plain sockets for a plain
    `redis://host[:port][/db]` address, else redis-py (credentials, TLS, unix
    sockets, options)."""
    url = urlsplit(address)
    if (
        url.scheme == "redis"
        and url.hostname
        and url.username is None
        and url.password is None
        and not url.query
        and not url.fragment
    ):
        return _PlainPublisher(url.hostname, url.port or 6379)
    return redis.Redis.from_url(
        address,
        socket_timeout=PUSH_TIMEOUT,
        socket_connect_timeout=PUSH_TIMEOUT,
        retry=None,
    )


class _PlainPublisher(PlainRedis):
    """PUBLISH over one socket per thread, in Redis's wire protocol (tenants.resp).

    redis-py's command path (its pool, command packing, reply parser) cost about
    150 µs of CPU per PUBLISH inside a request (40 µs in a loop), this about 50 µs
    (10 µs): most of a create's after-commit work. Pub/sub ignores the database
    number, so none is selected.

    A PUBLISH is sent without waiting for its reply (the receivers' count, which
    nobody reads): the wait put the thread to sleep and woke it again, about a
    third of the after-commit hook's CPU in a request. The reply is read before
    the thread's next PUBLISH on that socket (by then it has arrived; at most one
    is left unread, so a batch's second message waits for the first's reply as
    before, and a Redis that stopped answering still costs the next push
    PUSH_TIMEOUT). What that reading finds wrong (no reply, an error reply,
    anything but a count) is logged as that message's failure, as
    helpdesk.events logs a failed push, and its socket is closed; the next
    message goes out on a new one. Errors raised are redis-py's
    (ConnectionError, TimeoutError), for the message being sent. A socket the
    server closed while idle (or that holds stray data) is replaced before it is
    used, as redis-py's pool does.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            host, port, 0, timeout=PUSH_TIMEOUT, connect_timeout=PUSH_TIMEOUT
        )

    def publish(self, channel: str, message: bytes) -> None:
        self._settle()
        command = pack(("PUBLISH", channel, message))
        with self.talking("writing to"):
            self._reader()
            self._send(command)
        self.local.unread = channel

    def _settle(self) -> None:
        """Read the reply of this thread's previous PUBLISH, if it is unread. A
        failure is that message's: logged as helpdesk.events logs a push that
        failed (its socket closed; this publish connects again), not raised."""
        unread: str | None = getattr(self.local, "unread", None)
        if unread is None:
            return
        self.local.unread = None
        try:
            reply = read_reply(self.local.reader)
        except (OSError, redis.exceptions.ConnectionError) as error:
            self._close()
            logger.warning(
                "could not push to %s, channel layer unavailable: %r", unread, error
            )
            return
        if not isinstance(reply, int):
            self._close()
            logger.error("could not push to %s: PUBLISH got %r", unread, reply)


_directs: dict[tuple[int, int], _DirectPublisher | None] = {}


def _direct(layer: Any) -> _DirectPublisher | None:
    """The direct publisher of `layer` in this process, or None when its sends go
    through the layer (an in-memory layer, another backend, a layer whose hosts
    are not plain addresses: sentinels, extra connection options)."""
    key = (id(layer), os.getpid())
    if key not in _directs:
        hosts = (
            decode_hosts(layer._kwargs.get("hosts"))
            if type(layer) is RedisPubSubChannelLayer
            else []
        )
        plain = bool(hosts) and all(set(host) == {"address"} for host in hosts)
        with _publishers_lock:
            _directs[key] = _DirectPublisher(layer, hosts) if plain else None
    return _directs[key]
