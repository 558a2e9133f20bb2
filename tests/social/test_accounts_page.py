"""Settings → Accounts: what admins and other members see."""

import pytest
from django.test import override_settings

from social.connectors.base import TokenSet
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.factories import membership_of
from tests.social.connecting import brand_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def account_id(owner: User, tenant: Tenant) -> int:
    with tenant_context(tenant):
        return connect_account(
            membership_of(tenant, owner),
            brand=brand_of(tenant),
            platform="sandbox",
            tokens=TokenSet(access_token="t", account_external_id="1", handle="acme"),
        ).pk


def test_admins_get_the_connect_forms_and_disconnect_buttons(
    account_id: int, admin: User, tenant: Tenant
) -> None:
    page = login(admin).get("/t/acme-air/settings/accounts/")
    body = page.content.decode()
    assert page.status_code == 200
    assert 'action="/connect/acme-air/mastodon/"' in body
    assert 'name="mastodon-instance"' in body
    assert 'action="/connect/acme-air/bluesky/"' in body
    assert '<input type="password" name="bluesky-app_password"' in body
    assert f'action="/connect/acme-air/accounts/{account_id}/disconnect/"' in body
    assert (
        f'href="/t/acme-air/social/connect/sandbox/?brand={brand_of(tenant).pk}"'
        in (body)
    )


def test_agents_see_the_accounts_but_no_actions(account_id: int, agent: User) -> None:
    page = login(agent).get("/t/acme-air/settings/accounts/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "@acme" in body
    assert "/connect/acme-air/" not in body
    assert "/social/connect/" not in body


def test_a_deployment_without_mastodon_or_bluesky_offers_no_form(
    admin: User, tenant: Tenant
) -> None:
    with override_settings(SOCIAL_PLATFORMS=("sandbox", "x")):
        body = login(admin).get("/t/acme-air/settings/accounts/").content.decode()
    assert "/connect/acme-air/mastodon/" not in body
    assert "/connect/acme-air/bluesky/" not in body
