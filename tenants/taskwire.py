"""Task messages written straight onto a Redis broker's queue.

On a Redis broker, kombu stores a Celery task message as one LPUSH of a JSON
envelope onto the queue's list (kombu.transport.redis.Channel._put); a worker
pops it from there. tenants.tasks.enqueue builds that envelope through Celery's
create_task_message and send_task_message and kombu's producer, channel and
redis client: about 0.5 ms of a reply's CPU for one LPUSH. `publish` writes the
same envelope (Celery's protocol 2 message as `as_task_v2` makes it, with the
properties kombu's producer and channel add) through one socket per thread, in
Redis's wire protocol: about 60 us.

It covers the calls the project makes after a commit: integer arguments, an
optional `eta`, a task routed through a direct exchange to one queue (Celery
then publishes to the anonymous exchange with the queue's name as routing key,
so kombu looks up no binding), JSON, no compression. Everything else returns
False and goes through kombu as before: another transport or a Redis address
kombu reaches with credentials, TLS, a unix socket, a key prefix or a client
name; eager mode; a call from inside a worker's task; other options; a task
with a replaced apply_async, a custom shadow name or a result to store;
receivers of Celery's publish signals (they must see every message); and a
pool kombu has not published through yet (its first message declares the
queue, as kombu's does once per connection, then `learn` reads where it went).

A broker error is never raised here: the socket is closed and the call returns
False, so kombu sends the message, with its publish retries, and raises (or
logs, in tenants.tasks.enqueue) as it always did. A message whose LPUSH reached
Redis but whose answer was lost is then queued twice, as kombu's own retry would
queue it; the delivery claim makes a second copy harmless.

`mark` and `clear` keep a marker key beside the queue, for callers that want at
most one pending task per key (helpdesk.services.delivery_slots: one delivery task
per tenant and due slot): the caller that sets the marker queues the task, which
deletes the marker before it reads its work.

Kept in `tenants` (which imports nothing of ours) beside tenants.tasks, whose
routing it shares, so helpdesk.publish can use it and still import no
helpdesk module.
"""

import base64
import os
import threading
from datetime import datetime
from typing import Any, cast
from uuid import uuid4

import orjson
import redis
from celery import Task as CeleryTask
from celery.local import Proxy
from celery.signals import after_task_publish, before_task_publish, task_sent
from kombu.exceptions import OperationalError
from kombu.transport.redis import Channel as RedisChannel

from tenants.resp import PlainRedis
from tenants.tasks import _route

# The routed options the wire handles (apply_async's, worked out once per task).
_ROUTED = frozenset({"queue", "exchange", "routing_key", "serializer"})
# Channel options that change nothing on the wire for a message of priority 0.
_TRANSPORT_OPTIONS = frozenset(
    {
        "visibility_timeout",
        "socket_timeout",
        "socket_connect_timeout",
        "retry_on_timeout",
        "health_check_interval",
        "polling_interval",
        # kombu's producer adds the publish retry policy to them.
        "max_retries",
        "interval_start",
        "interval_step",
        "interval_max",
    }
)
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_APPLY_ASYNC = CeleryTask.apply_async
_INT64 = 2**63
_SHADOW_NAME = CeleryTask.shadow_name


class _Route:
    """Where task messages of one task go, and what their envelope repeats."""

    __slots__ = ("delivery_mode", "key", "origin", "priority", "routing_key")

    def __init__(
        self,
        key: bytes,
        routing_key: str,
        delivery_mode: int,
        priority: int,
        origin: str,
    ) -> None:
        self.key = key
        self.routing_key = routing_key
        self.delivery_mode = delivery_mode
        self.priority = priority
        self.origin = origin


class _Target:
    """A producer pool's Redis broker as kombu's channel reaches it."""

    def __init__(self, pool: Any, channel: Any, wire: "_Wire | None") -> None:
        self.pool = pool
        self.channel = channel
        self.wire = wire
        self.routes: dict[str, _Route | None] = {}


class _Wire(PlainRedis):
    """LPUSH over one socket per thread (tenants.resp) to the broker's Redis."""

    def lpush(self, key: bytes, value: bytes) -> bool:
        """Whether Redis took the value (False: the socket is closed)."""
        try:
            reply = self.execute("LPUSH", key, value)
        except redis.exceptions.RedisError:
            self._close()  # an error answer, or the connection failed
            return False
        return isinstance(reply, int)


# By producer pool (id, with the pool itself to check it) and process.
_targets: dict[tuple[int, int], _Target] = {}
_lock = threading.Lock()


def publish(task: Any, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
    """Queue `task(*args)` as `task.apply_async(args, **options)` would on this
    Redis broker; False when the call is not one this covers, or the broker
    did not take it (then send it through kombu). Raises TypeError for
    arguments the task does not take, as apply_async does."""
    if isinstance(task, Proxy):  # a module's shared_task
        task = task._get_current_object()
    if options and options.keys() != {"eta"}:
        return False
    eta = options.get("eta")
    if eta is not None and type(eta) is not datetime:
        return False
    for arg in args:
        if type(arg) is not int or not -_INT64 <= arg < _INT64:
            return False  # saferepr, kombu's JSON: other types may differ
    if not _covered(task):
        return False
    app = task.app
    pool = app.amqp.producer_pool
    target = _targets.get((id(pool), os.getpid()))
    if target is None or target.pool is not pool or target.wire is None:
        return False
    name = task.name
    route = target.routes.get(name)
    if route is None:
        if name in target.routes:
            return False
        route = target.routes[name] = _route_of(app, task, target)
        if route is None:
            return False
    if task.typing:
        task.__header__(*args)  # apply_async's argument check: TypeError
    task_id = str(uuid4())
    headers = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": eta.isoformat() if eta is not None else None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr(args),
        "kwargsrepr": "{}",
        "origin": route.origin,
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    body = orjson.dumps((args, {}, _EMBED))
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": app.thread_oid,
            "delivery_mode": route.delivery_mode,
            "delivery_info": {"exchange": "", "routing_key": route.routing_key},
            "priority": route.priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid4()),
        },
    }
    return target.wire.lpush(route.key, orjson.dumps(envelope))


def mark(task: Any, key: str, ttl_ms: int) -> bool | None:
    """Set marker `key` on the broker's Redis of `task` unless it is set
    (SET NX, expiring after `ttl_ms`): True when this call set it, False when it
    was set already (a task standing for it is pending), None when the marker
    cannot be used here (a call the wire does not cover: see `publish`; the
    wire not learned yet; a broker error). A marker serves callers that queue
    one task per key: only the caller that sets it queues the task, which
    clears it (`clear`) before it reads its work."""
    if isinstance(task, Proxy):
        task = task._get_current_object()
    if not _covered(task):
        return None
    pool = task.app.amqp.producer_pool
    target = _targets.get((id(pool), os.getpid()))
    if target is None or target.pool is not pool or target.wire is None:
        return None
    wire = target.wire
    try:
        reply = wire.execute("SET", key, b"1", "NX", "PX", max(1, int(ttl_ms)))
    except redis.exceptions.RedisError:
        wire._close()
        return None
    return reply is not None


def clear(app: Any, key: str) -> bool:
    """Delete marker `key` (see `mark`) from `app`'s Redis broker, from a
    worker or any process: over a wire when kombu reaches the broker by a plain
    socket, else through kombu's channel (nothing on a broker other than Redis,
    where `mark` sets nothing). False when the broker did not answer."""
    known = (id(app), os.getpid())
    wire: _Wire | None = None
    try:
        if known not in _clearing:
            with _lock, app.producer_or_acquire() as producer:
                _clearing[known] = _wire_for(producer.channel)
        wire = _clearing[known]
        if wire is not None:
            wire.execute("DEL", key)
            return True
        with app.producer_or_acquire() as producer:
            if type(producer.channel) is RedisChannel:
                cast(Any, producer.channel).client.delete(key)
    except (redis.exceptions.RedisError, OSError, OperationalError):
        if wire is not None:
            wire._close()
        return False
    return True


# The wire `clear` deletes through, by app and process (None: through kombu).
_clearing: dict[tuple[int, int], "_Wire | None"] = {}


def _covered(task: Any) -> bool:
    """Whether apply_async would publish `task`'s message as it is (no eager
    run, no parent task, no replaced apply_async or shadow name, no signal
    receivers to call)."""
    app = task.app
    return not (
        "apply_async" in vars(task)
        or type(task).apply_async is not _APPLY_ASYNC
        or type(task).shadow_name is not _SHADOW_NAME
        or task.__v2_compat__
        or task._dump_pydantic_arguments is not None
        or before_task_publish.receivers
        or after_task_publish.receivers
        or task_sent.receivers
        or app.conf.task_always_eager
        or app.current_worker_task is not None
    )


def learn(task: Any) -> None:
    """After kombu published a message of `task` through its app's producer
    pool: read where the pool's messages go, once per pool and process (a wire
    for a plain Redis broker, none for others). Nothing when kombu's producer
    was not used (eager mode, a replaced apply_async, ...)."""
    if isinstance(task, Proxy):
        task = task._get_current_object()
    if not _covered(task):
        return
    app = task.app
    pool = app.amqp.producer_pool
    key = (id(pool), os.getpid())
    known = _targets.get(key)
    if known is not None and known.pool is pool:
        return
    with _lock, app.producer_or_acquire() as producer:
        _targets[key] = _Target(pool, producer.channel, _wire_for(producer.channel))


def _wire_for(channel: Any) -> "_Wire | None":
    """A wire to `channel`'s broker, or None when the wire would not reach it
    as kombu does (another transport, a key prefix, other channel options)."""
    if type(channel) is not RedisChannel:
        return None
    channel = cast(Any, channel)  # kombu's attributes, private ones included
    options = channel.connection.client.transport_options or {}
    if options.keys() - _TRANSPORT_OPTIONS or channel.global_keyprefix:
        return None
    if channel.client_name is not None or channel.socket_keepalive:
        return None
    return _wire_of(channel._connparams())


def _wire_of(params: dict[str, Any]) -> "_Wire | None":
    """A wire to the Redis of kombu's connection parameters `params`, or None
    when kombu reaches it otherwise than by a plain TCP socket (credentials,
    TLS, a unix socket)."""
    if (
        params.get("connection_class") is not redis.Connection
        or params.get("path") is not None
        or params.get("username") is not None
        or params.get("password") is not None
        or params.get("credential_provider") is not None
    ):
        return None
    return _Wire(
        params["host"],
        int(params["port"]),
        int(params["db"] or 0),
        connect_timeout=params["socket_connect_timeout"],
        timeout=params["socket_timeout"],
    )


def _route_of(app: Any, task: Any, target: _Target) -> _Route | None:
    """Task `task`'s route on the wire, or None when it must go through kombu."""
    found = _route(app, task.name, os.getpid())
    if found is None:
        return None
    routed, origin, sent_event = found
    if sent_event or routed.keys() - _ROUTED:
        return None
    if routed.get("serializer", app.conf.task_serializer) != "json":
        return None
    if app.conf.task_compression or app.conf.task_protocol != 2:
        return None
    queue = routed.get("queue")
    if isinstance(queue, str):
        queue = app.amqp.queues[queue]
    if queue is None or queue.exchange is None or queue.exchange.type != "direct":
        return None
    # send_task_message's anonymous exchange: no binding lookup in Redis.
    if routed.get("exchange") and routed.get("routing_key"):
        return None
    if queue.expires is not None or queue.message_ttl is not None:
        return None
    channel = target.channel
    if channel._expires:
        return None
    delivery_mode = queue.exchange.delivery_mode or app.conf.task_default_delivery_mode
    delivery_mode = {"persistent": 2, "transient": 1}.get(delivery_mode, delivery_mode)
    priority = channel.default_priority
    message = {"properties": {"priority": priority}}
    key = channel._q_for_pri(queue.name, channel._get_message_priority(message))
    return _Route(key.encode(), queue.name, int(delivery_mode), priority, origin)
