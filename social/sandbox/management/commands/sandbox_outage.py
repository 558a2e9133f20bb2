"""`manage.py sandbox_outage`: make the Sandbox answer 429 and/or 5xx for a while."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from social.sandbox import outage
from social.sandbox.models import Outage


class Command(BaseCommand):
    help = (
        "Turn the Sandbox's outage switch on (every API call answered 429 with "
        "Retry-After, 5xx, or both mixed) for some seconds, or off with --off."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--mode", choices=Outage.Mode.values, default=Outage.Mode.MIXED
        )
        parser.add_argument("--seconds", type=float, default=300.0)
        parser.add_argument(
            "--retry-after", type=int, default=30, help="seconds a 429 asks to wait"
        )
        parser.add_argument("--off", action="store_true", help="end it now")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["off"]:
            ended = outage.end_outage()
            self.stdout.write("Outage ended." if ended else "No outage was running.")
            return
        try:
            running = outage.start_outage(
                mode=options["mode"],
                seconds=options["seconds"],
                retry_after=options["retry_after"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Sandbox outage: {running}.")
