"""The Celery app: configured from Django settings under the CELERY_ namespace."""

import os
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
