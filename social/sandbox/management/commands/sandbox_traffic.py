"""`manage.py sandbox_traffic`: realistic customer posts on the Sandbox network."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from social.sandbox import traffic


class Command(BaseCommand):
    help = "Generate customer traffic on the Sandbox network at a configurable rate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--brand", default="acmeair", help="the brand's sandbox handle"
        )
        parser.add_argument("--rate", type=float, default=0.2, help="posts per second")
        parser.add_argument("--duration", type=float, default=60, help="seconds")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        count = traffic.run(
            options["brand"],
            rate=options["rate"],
            duration=options["duration"],
            seed=options["seed"],
        )
        self.stdout.write(f"Posted {count} customer posts as the Sandbox crowd.")
