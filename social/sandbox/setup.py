"""Register Earshot as an app on the Sandbox and connect a brand's sandbox account
(what an admin does through the OAuth flow, done directly for the demo)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from social.connectors.base import TokenSet
from social.models import SocialAccount
from social.sandbox.models import App, Grant, Person
from social.services import connect_account
from tenants.models import Brand, Membership


def register_earshot_app() -> App:
    """The Sandbox's record of Earshot, matching settings.SOCIAL_APPS["sandbox"]."""
    config = settings.SOCIAL_APPS["sandbox"]
    site = settings.SITE_URL.rstrip("/")
    app, _ = App.objects.update_or_create(
        client_id=config["client_id"],
        defaults={
            "name": "Earshot",
            "client_secret": config["client_secret"],
            "redirect_uris": f"{site}/social/callback/sandbox/",
            "webhook_url": f"{site}/hooks/sandbox/",
            "webhook_secret": config["webhook_secret"],
        },
    )
    return app


def connect_demo_account(
    membership: Membership, brand: Brand, handle: str
) -> SocialAccount:
    """Create the brand's sandbox person, grant Earshot, and connect the account."""
    app = register_earshot_app()
    person, _ = Person.objects.get_or_create(
        handle=handle,
        defaults={"name": brand.name, "is_brand": True, "followers": 25_000},
    )
    grant = Grant.objects.filter(app=app, person=person, revoked=False).first()
    if grant is None:
        grant = Grant.objects.create(
            app=app, person=person, expires_at=timezone.now() + timedelta(days=365)
        )
    tokens = TokenSet(
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        expires_at=grant.expires_at,
        account_external_id=str(person.pk),
        handle=person.handle,
        display_name=person.name,
    )
    return connect_account(
        membership,
        brand=brand,
        platform="sandbox",
        tokens=tokens,
        base_url=settings.SOCIAL_APPS["sandbox"]["base_url"],
    )
