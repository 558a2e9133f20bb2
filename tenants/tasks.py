"""`@tenant_task` and the workspace tasks.

Every tenant task takes `tenant_id` as its first argument; the decorator loads the
tenant and opens its context, so no ambient tenant is ever inherited. Tasks that do
outbound I/O pass `atomic=False` and open `tenant_context(tenant)` around their
database work only, keeping network calls out of transactions.
"""

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, partial, wraps
from typing import Any

from celery import Celery, shared_task
from celery import Task as CeleryTask
from celery.app.routes import MapRoute
from celery.local import Proxy
from celery.utils import uuid
from celery.utils.nodenames import anon_nodename
from celery.utils.quorum_queues import detect_quorum_queues
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from kombu.transport.redis import Channel as RedisChannel

from tenants.context import tenant_context
from tenants.models import Invitation, Tenant
from tenants.outages import BROKER_ERRORS

logger = logging.getLogger(__name__)

# Tasks that are not about one tenant (registered by @system_task); every other task
# must be a @tenant_task.
SYSTEM_TASKS: set[str] = set()

TENANT_TASK_ATTR = "__earshot_tenant_task__"


def system_task(*, name: str, **options: Any) -> Callable[..., Any]:
    """Register a task for no tenant (beat fan-outs); it sees no tenant rows."""

    def decorator(fn: Callable[..., Any]) -> Any:
        SYSTEM_TASKS.add(name)
        return shared_task(name=name, **options)(fn)

    return decorator


def tenant_task(
    *, name: str, atomic: bool = True, **options: Any
) -> Callable[..., Any]:
    """Register `fn(tenant, *args)` as a task called as `task.delay(tenant_id, *args)`.

    The body runs inside `tenant_context(tenant)` unless `atomic=False`. A task for a
    workspace that is no longer active is skipped and logged.
    """

    bound = bool(options.get("bind"))

    def decorator(fn: Callable[..., Any]) -> Any:
        def call(head: tuple[Any, ...], tenant_id: int, args: Any, kwargs: Any) -> Any:
            tenant = Tenant.objects.filter(pk=int(tenant_id)).first()
            if tenant is None or not tenant.is_active:
                logger.info("skipping %s for inactive tenant %s", name, tenant_id)
                return None
            if not atomic:
                return fn(*head, tenant, *args, **kwargs)
            with tenant_context(tenant):
                return fn(*head, tenant, *args, **kwargs)

        if bound:

            @wraps(fn)
            def run_bound(task: Any, tenant_id: int, *args: Any, **kwargs: Any) -> Any:
                return call((task,), tenant_id, args, kwargs)

            run: Callable[..., Any] = run_bound
        else:

            @wraps(fn)
            def run_plain(tenant_id: int, *args: Any, **kwargs: Any) -> Any:
                return call((), tenant_id, args, kwargs)

            run = run_plain
        setattr(run, TENANT_TASK_ATTR, True)
        return shared_task(name=name, **options)(run)

    return decorator


def enqueue_on_commit(
    task: Any, *args: Any, swept_by: str | None, **options: Any
) -> None:
    """Publish `task.apply_async(args, **options)` once the transaction commits.

    The row the task works on is committed by then, so a broker outage must not
    fail the request that saved it: the publish error is logged as a warning and
    `swept_by` (the beat task that re-enqueues what was stored but not queued)
    picks the work up when the broker is back. `swept_by=None` says nothing will,
    and the warning says so.
    """
    transaction.on_commit(partial(enqueue, task, *args, swept_by=swept_by, **options))


def enqueue(task: Any, *args: Any, swept_by: str | None, **options: Any) -> bool:
    """Publish the task now; False (and a warning) when the broker is unreachable."""
    try:
        if not _publish(task, args, options):
            task.apply_async(args, **options)
    except BROKER_ERRORS as error:
        logger.warning(
            "broker unavailable, %s%r not enqueued (%s): %r",
            task.name,
            args,
            f"{swept_by} will pick it up" if swept_by else "no sweep retries it",
            error,
        )
        return False
    return True


# The options `_publish` takes; any other goes through apply_async.
_TIMING = frozenset({"eta", "countdown"})


@cache
def _route(app: Celery, name: str, pid: int) -> tuple[dict[str, Any], str, bool] | None:
    """Task `name`'s publish options as apply_async works them out (its exec
    options, then the router's), the origin header and whether to send a
    task-sent event, once per process; None when the fast path must not be used
    (a result to store, time limits or expiry, a router function, quorum queues)."""
    task: Any = app.tasks[name]
    options = {
        key: value
        for key, value in task._get_exec_options().items()
        if value is not None
    }
    for timing in ("time_limit", "soft_time_limit", "expires"):
        if options.pop(timing, None) is not None:
            return None
    ignore_result = options.pop("ignore_result", task.ignore_result)
    if not ignore_result:
        return None
    router: Any = app.amqp.router
    if not all(isinstance(route, MapRoute) for route in router.routes):
        return None  # a router function may route by the call's arguments
    driver = app.producer_pool.connections.connection.transport.driver_type
    if detect_quorum_queues(app, driver)[0]:
        return None
    routed = router.route(options, name, (), {}, task)
    return routed, anon_nodename(), bool(app.conf.task_send_sent_event)


def _publish(task: Any, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
    """Publish `task(*args)` as `task.apply_async(args, **options)` would, without
    its per-call work; False when this call must go through apply_async.

    apply_async cost about 0.5-1.2 ms of a reply's CPU: Celery resolves the task's
    options through Django's settings and routes it again on every call. Here the
    routed options are worked out once per process (`_route`) and the message is
    built and sent with Celery's own create_task_message and send_task_message:
    the same headers, body, route, serializer, delivery mode, publish retry and
    signals (tests/helpdesk/test_enqueue_fast.py compares them). Left to
    apply_async: eager mode, a call from inside a worker's task (parent and root
    ids), options other than eta or countdown, and an apply_async replaced on the
    task (a subclass's or a test's).
    """
    if isinstance(task, Proxy):  # a module's shared_task
        task = task._get_current_object()
    app = task.app
    if (
        options.keys() - _TIMING
        or "apply_async" in vars(task)
        or type(task).apply_async is not _APPLY_ASYNC
        or task.__v2_compat__
        or task._dump_pydantic_arguments is not None
        or app.conf.task_always_eager
        or app.current_worker_task is not None
    ):
        return False
    route = _route(app, task.name, os.getpid())
    if route is None:
        return False
    routed, origin, sent_event = route
    if task.typing:
        task.__header__(*args)  # apply_async's argument check: TypeError
    amqp = app.amqp
    message = amqp.create_task_message(
        uuid(),
        task.name,
        args,
        {},
        options.get("countdown"),
        options.get("eta"),
        reply_to=app.thread_oid,
        create_sent_event=sent_event,
        shadow=task.shadow_name(args, {}, options),
        origin=origin,
        ignore_result=True,
    )
    with (
        app.producer_or_acquire() as producer,
        producer.connection._reraise_as_library_errors(),
    ):
        amqp.send_task_message(producer, task.name, message, **routed)
        _keep_redis_client(producer.channel)
    return True


def _keep_redis_client(channel: Any) -> None:
    """Give a kombu Redis channel one redis client for its lifetime.

    The channel's `_put` takes `conn_or_acquire()` without a client, which builds
    a new `redis.Redis` (its table of reply callbacks) on the channel's connection
    pool for every publish: about 0.1 ms of a reply's CPU. The client kept here
    uses the same pool, so connections, timeouts and reconnects are the pool's as
    before; a channel that kombu replaces (after a connection error) gets its own.
    Channels of other transports are left alone.
    """
    if type(channel) is not RedisChannel or "conn_or_acquire" in vars(channel):
        return
    client = channel._create_client()  # type: ignore[attr-defined]

    @contextmanager
    def conn_or_acquire(given: Any = None) -> Iterator[Any]:
        yield given or client

    vars(channel)["conn_or_acquire"] = conn_or_acquire


_APPLY_ASYNC = CeleryTask.apply_async


@tenant_task(name="tenants.send_invitation_email", atomic=False)
def send_invitation_email(tenant: Tenant, invitation_id: int) -> None:
    """Email the invitation link: read the row in a transaction, then send."""
    from tenants.services import invitation_token

    with tenant_context(tenant):
        invitation = (
            Invitation.objects.select_related("invited_by")
            .filter(pk=invitation_id)
            .first()
        )
        if invitation is None or not invitation.is_pending:
            return
        token = invitation_token(invitation)
        inviter = (
            invitation.invited_by.public_name if invitation.invited_by else "A teammate"
        )
        email, role = invitation.email, invitation.get_role_display()
    link = settings.SITE_URL.rstrip("/") + reverse("frontend:invitation", args=[token])
    send_mail(
        subject=f"{inviter} invited you to {tenant.name} on Earshot",
        message=(
            f"{inviter} invited you to join {tenant.name} on Earshot as {role}.\n\n"
            f"Accept the invitation: {link}\n\n"
            f"The link expires in {settings.INVITATION_MAX_AGE_DAYS} days."
        ),
        from_email=None,
        recipient_list=[email],
    )
