"""The workspace every fault test breaks: Acme Air with its Sandbox account
connected (no send hold), an API channel and a write token for it."""

from dataclasses import dataclass

from django.conf import settings

from social.api_channel import create_api_channel
from social.models import SocialAccount
from social.sandbox.models import Person
from social.sandbox.setup import connect_demo_account
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant
from tests.factories import make_user, make_workspace, membership_of
from tests.faults.traffic import SandboxIdentity

BRAND_HANDLE = "acmeair"


@dataclass
class Workspace:
    tenant: Tenant
    membership: Membership
    brand: Brand
    account: SocialAccount
    brand_person: Person
    channel: SocialAccount
    token: str

    @property
    def identity(self) -> SandboxIdentity:
        return SandboxIdentity(
            account_id=str(self.brand_person.pk),
            handle=self.brand_person.handle,
            secret=settings.SOCIAL_APPS["sandbox"]["webhook_secret"],
        )


def make_faults_workspace() -> Workspace:
    owner = make_user("olivia@acme.example", display_name="Olivia")
    tenant = make_workspace("Acme Air", owner=owner)
    membership = membership_of(tenant, owner)
    with tenant_context(tenant):
        Brand.objects.update(send_hold_seconds=0)
        brand = Brand.objects.get()
        account = connect_demo_account(membership, brand, BRAND_HANDLE)
        channel = create_api_channel(membership, brand=brand, name="Fault source")
        _, token = create_api_token(membership, name="faults", scope="write")
    return Workspace(
        tenant=tenant,
        membership=membership,
        brand=brand,
        account=account,
        brand_person=Person.objects.get(handle=BRAND_HANDLE),
        channel=channel,
        token=token,
    )
