"""`manage.py seed_demo`: the demo workspace "Acme Air" with an owner login."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tenants.services import create_workspace

DEMO_EMAIL = "owner@acme-air.example"
DEMO_PASSWORD = "earshot-demo"  # noqa: S105 - printed on the console for the demo
DEMO_AGENT_EMAIL = "agent@acme-air.example"


class Command(BaseCommand):
    help = "Create the demo tenant Acme Air with one brand and owner/agent logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"]
        owner = User.objects.filter(email=DEMO_EMAIL).first()
        if owner is None:
            owner = User.objects.create_user(
                DEMO_EMAIL,
                password,
                display_name="Olivia (Acme Air)",
                is_staff=True,
                is_superuser=True,
            )
            _verify(owner)
        tenant = Tenant.objects.filter(slug="acme-air").first()
        if tenant is None:
            membership = create_workspace(owner=owner, name="Acme Air")
            tenant = membership.tenant
        agent = User.objects.filter(email=DEMO_AGENT_EMAIL).first()
        if agent is None:
            agent = User.objects.create_user(
                DEMO_AGENT_EMAIL, password, display_name="Andy (Acme Air)"
            )
            _verify(agent)
        with tenant_context(tenant):
            Membership.objects.get_or_create(
                tenant=tenant, user=agent, defaults={"role": Membership.Role.AGENT}
            )
            if settings.SANDBOX_ENABLED:
                from social.sandbox.setup import connect_demo_account

                membership = Membership.objects.select_related("user").get(user=owner)
                membership.tenant = tenant
                brand = Brand.objects.order_by("id")[0]
                Brand.objects.filter(pk=brand.pk).update(
                    signature_rules={"sandbox": " ^{initials}"}
                )
                connect_demo_account(membership, brand, "acmeair")
                from social.models import ListeningRule

                ListeningRule.objects.get_or_create(
                    tenant=tenant,
                    brand=brand,
                    name="Untagged mentions of Acme Air",
                    defaults={"query": '("acme air" OR acmeair OR #acmeair) -hiring'},
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo workspace {tenant.name} at /t/{tenant.slug}/\n"
                f"  owner: {DEMO_EMAIL} / {password} (also operator at /admin/)\n"
                f"  agent: {DEMO_AGENT_EMAIL} / {password}\n"
                + (
                    f"  Sandbox network (be the customer): {settings.SITE_URL}/sandbox/"
                    if settings.SANDBOX_ENABLED
                    else ""
                )
            )
        )


def _verify(user: User) -> None:
    from allauth.account.models import EmailAddress

    EmailAddress.objects.get_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
