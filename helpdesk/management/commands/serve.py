"""`manage.py serve`: the ASGI app and a real Celery worker in one process.

This is the embedded mode of `make demo`: uvicorn serves HTTP and websockets, a
Celery worker consumes the kombu memory transport from a thread of the same
process (not eager mode: tasks are queued, acknowledged and run as in production),
and Celery beat runs its schedule (the sweeps, polling, snoozes) from another
thread, as the separate `celery beat` process does in production.
"""

import logging
import threading
from pathlib import Path
from typing import Any

import uvicorn
from celery.worker import WorkController
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from uvicorn.config import LOGGING_CONFIG

from helpdesk.celery import app as celery_app

logger = logging.getLogger(__name__)


def start_embedded_worker() -> WorkController:
    """Start a one-thread Celery worker on the configured (in-memory) broker."""
    worker = WorkController(
        app=celery_app,
        pool_cls="solo",
        concurrency=1,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        hostname="embedded@earshot",
    )
    thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    thread.start()
    return worker


def start_embedded_beat() -> Any:
    """Run CELERY_BEAT_SCHEDULE from a thread of this process (the memory broker
    cannot be shared with a separate beat process)."""
    from celery.beat import EmbeddedService

    schedule = Path(settings.BASE_DIR) / "var" / "celerybeat-schedule"
    schedule.parent.mkdir(exist_ok=True)
    beat: Any = EmbeddedService(
        celery_app, thread=True, schedule_filename=str(schedule)
    )
    beat.start()
    return beat


class Command(BaseCommand):
    help = "Serve Earshot (ASGI) with an in-process Celery worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker", action="store_true", help="run without the embedded worker"
        )
        parser.add_argument(
            "--traffic",
            type=float,
            default=0.0,
            help="Sandbox customer posts per second (0: none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        embedded = settings.CELERY_BROKER_URL.startswith("memory")
        if not options["no_worker"] and not embedded:
            raise CommandError(
                "The embedded worker needs the memory broker; with "
                f"{settings.CELERY_BROKER_URL} run `celery -A helpdesk worker` apart "
                "and pass --no-worker."
            )
        worker = None if options["no_worker"] else start_embedded_worker()
        beat = None if options["no_worker"] else start_embedded_beat()
        if options["traffic"] > 0 and settings.SANDBOX_ENABLED:
            from social.sandbox import traffic

            traffic.start_background("acmeair", rate=options["traffic"])
        self.stdout.write(
            f"Earshot on http://{options['host']}:{options['port']}/ "
            f"(worker: {'in-process' if worker else 'external'})"
        )
        try:
            uvicorn.run(
                "helpdesk.asgi:application",
                host=options["host"],
                port=options["port"],
                log_level="info",
                lifespan="off",
                log_config=None if settings.LOG_FORMAT == "json" else LOGGING_CONFIG,
            )
        finally:
            if beat is not None:
                beat.stop()
            if worker is not None:
                worker.stop(in_sighandler=False)
