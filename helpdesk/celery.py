"""The Celery app: configured from Django settings under the CELERY_ namespace."""

import os
from importlib import import_module
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_init
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

app = Celery("earshot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _guard_closed_redis_channel() -> None:
    """Make kombu's Redis channel fail with a connection error, not AttributeError,
    when it needs a new pool after its connection was closed.

    Seen in a prefork worker on the 3rd Redis outage (kombu 5.7.0): the consumer
    closes the lost connection (celery Consumer.on_connection_error_after_connected
    → connection.close → Channel.close → QoS.restore_unacked_once → restore_unacked
    → conn_or_acquire → Channel.pool → _connparams), but the transport's `client`
    is already None, so `conninfo.hostname` raises AttributeError. Celery ignores
    only connection errors there: the AttributeError is "Unrecoverable" and the
    worker exits. As a redis ConnectionError it is ignored and the worker
    reconnects; the unacknowledged messages stay in Redis's unacked hash and come
    back after the visibility timeout, as after any crash.
    """
    channel_class: Any = kombu_redis.Channel
    original = channel_class._connparams
    if getattr(original, "__earshot_guard__", False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("The broker connection is closed.")
        return original(self, asynchronous=asynchronous)

    _connparams.__earshot_guard__ = True  # type: ignore[attr-defined]
    channel_class._connparams = _connparams


_guard_closed_redis_channel()


def _return_connections(fixup: Any) -> None:
    """Give each database connection back to its pool, or close it, as a web
    request does at its end (django.db.close_old_connections): unusable after an
    error, or older than CONN_MAX_AGE (0: at once). The pool stays open."""
    for conn in fixup._db.connections.all(initialized_only=True):
        try:
            conn.close_if_unusable_or_obsolete()
        except fixup.interface_errors:
            pass
        except fixup.DatabaseError as exc:
            if "closed" not in str(exc) and "not connected" not in str(exc):
                raise


def _keep_the_connection_pool() -> None:
    """Stop Celery's Django fixup from closing the connection pool around every
    task of a prefork child.

    Before and after each task, celery.fixups.django.DjangoWorkerFixup closes
    every connection and, with Django's psycopg pool in a prefork child, the pool
    itself (celery 5.7, its issue #10554): each task then started a new pool with
    its threads and opened new PostgreSQL sessions (92-124 sessions for about 55
    delivery tasks; 25-30% of the pool child's CPU in a py-spy profile of the
    side by side's replies). Around a task, connections now go back to the pool
    as at the end of a web request (`_return_connections`); a connection left
    unusable by an error is closed, not pooled, as before. The pool inherited
    over fork is still closed once in the child (on_worker_process_init is not
    touched), and a beat's embedded start still closes everything."""
    celery_django: Any = import_module("celery.fixups.django")  # untyped in stubs
    fixup_class = celery_django.DjangoWorkerFixup
    if getattr(fixup_class.on_task_prerun, "__earshot_pool__", False):
        return

    def on_task_prerun(self: Any, sender: Any, **_: Any) -> None:
        if not getattr(sender.request, "is_eager", False):
            _return_connections(self)

    def on_task_postrun(self: Any, sender: Any, **_: Any) -> None:
        if not getattr(sender.request, "is_eager", False):
            _return_connections(self)
            self.close_cache()

    on_task_prerun.__earshot_pool__ = True  # type: ignore[attr-defined]
    fixup_class.on_task_prerun = on_task_prerun
    fixup_class.on_task_postrun = on_task_postrun


_keep_the_connection_pool()


@worker_init.connect
def _warm_readers(**_: Any) -> None:
    """Load the language model and the sentiment lexicons when a worker starts
    (prefork children inherit them), so that the first message it records does not
    wait for them (about 1-3 s). Then what the worker loaded is frozen out of the
    garbage collector's way (helpdesk/gc_tuning.py), before a prefork pool forks:
    its children inherit the frozen generation."""
    from helpdesk.gc_tuning import tune_collector
    from helpdesk.sentiment import warm

    warm()
    tune_collector()
