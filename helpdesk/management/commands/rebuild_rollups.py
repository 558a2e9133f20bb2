"""`manage.py rebuild_rollups [--tenant slug]`: recompute the report rollups and
histogram cells from the care facts and messages, one workspace at a time (each
inside its own tenant context and transaction)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from helpdesk.services.rollups import rebuild_rollups
from tenants.context import tenant_context
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Rebuild the report rollups of one workspace (--tenant) or of all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="The workspace's slug (default: all).")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.order_by("id")
        slug = options.get("tenant")
        if slug:
            tenants = tenants.filter(slug=slug)
            if not tenants.exists():
                raise CommandError(f"no workspace with slug {slug!r}")
        for tenant in tenants:
            with tenant_context(tenant):
                rows, cells = rebuild_rollups(tenant)
            self.stdout.write(
                f"{tenant.slug}: {rows} rollup rows, {cells} histogram cells"
            )
