"""`manage.py create_db_roles`: set up the owner and runtime roles for RLS."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.dbroles import RolePlan, ensure_roles_and_database


class Command(BaseCommand):
    requires_system_checks: list[str] = []
    help = "Create the table-owner and runtime PostgreSQL roles and the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--superuser-url", required=True, help="a superuser connection URL"
        )
        parser.add_argument("--database", default="earshot")
        parser.add_argument("--owner", default="earshot_owner")
        parser.add_argument("--app", default="earshot_app")
        parser.add_argument("--owner-password", default=None)
        parser.add_argument("--app-password", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        plan = RolePlan(
            superuser_url=options["superuser_url"],
            database=options["database"],
            owner=options["owner"],
            app=options["app"],
            owner_password=options["owner_password"],
            app_password=options["app_password"],
        )
        ensure_roles_and_database(plan)
        self.stdout.write(
            f"Roles {plan.owner} (owner, migrations) and {plan.app} (runtime) "
            "are ready "
            f"on database {plan.database}."
        )
