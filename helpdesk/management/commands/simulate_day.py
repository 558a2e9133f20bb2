"""`manage.py simulate_day --brand <slug> --agents N --volume M --seed S
[--policy earshot|fifo|loudest|all] [--workspace <slug>] [--speedup] [--dry-run]`:
a seeded day of care on a simulated clock (helpdesk.simulation), per queue policy.

The day runs in a throwaway workspace that is always rolled back. The figures are
kept as a SimulationRun of the brand named by --brand (for its reports page) when
that brand exists in a workspace and --dry-run is not given; the simulated brand
copies its queue window, hold and public reply limit.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from helpdesk.simulation import (
    POLICIES,
    DayParameters,
    find_brand,
    result_table,
    simulate_day,
)


class Command(BaseCommand):
    help = "Simulate a day of care on a simulated clock and compare queue policies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--brand", required=True, help="The brand's slug.")
        parser.add_argument("--workspace", help="The brand's workspace (slug).")
        parser.add_argument("--agents", type=int, required=True)
        parser.add_argument("--volume", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--policy", choices=[*POLICIES, "all"], default="earshot")
        parser.add_argument(
            "--speedup",
            action="store_true",
            help="Skip checking each pick of the inbox against the pure queue order.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Keep no SimulationRun."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["agents"] <= 100:
            raise CommandError("--agents: give a whole number from 1 to 100.")
        if not 1 <= options["volume"] <= 100_000:
            raise CommandError("--volume: give a whole number from 1 to 100000.")
        if options["policy"] not in (*POLICIES, "all"):
            raise CommandError("--policy: choose earshot, fifo, loudest or all.")
        try:
            brand = find_brand(options["brand"], workspace=options.get("workspace"))
        except ValueError as error:
            raise CommandError(f"{error}; name one with --workspace") from error
        policy = options["policy"]
        params = DayParameters(
            agents=options["agents"],
            volume=options["volume"],
            seed=options["seed"],
            policies=POLICIES if policy == "all" else (policy,),
            self_check=not options["speedup"],
            **(
                {
                    "queue_window_minutes": brand.queue_window_minutes,
                    "send_hold_seconds": brand.send_hold_seconds,
                    "public_reply_limit": brand.public_reply_limit,
                }
                if brand is not None
                else {}
            ),
        )
        outcome = simulate_day(params, brand=brand, store=not options["dry_run"])
        self.stdout.write(
            f"simulated day: volume {params.volume}, {params.agents} agents, "
            f"seed {params.seed}, queue window {params.queue_window_minutes} min"
        )
        for line in result_table(outcome):
            self.stdout.write(line)
        if outcome.stored_run_id is not None and brand is not None:
            self.stdout.write(
                f"kept as simulation run {outcome.stored_run_id} of "
                f"{brand.tenant.slug}/{brand.slug}"
            )
        elif brand is None:
            self.stdout.write(
                f"no brand {options['brand']!r} in any workspace: nothing kept"
            )
        else:
            self.stdout.write("dry run: nothing kept")
