"""A visitor signs up, lands in the new workspace, invites a teammate, who joins."""

import re

import pytest
from django.core import mail
from django.test import override_settings
from playwright.sync_api import Page, expect

from tenants.context import tenant_context
from tenants.models import Membership, Tenant
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery-staple"


@override_settings(ACCOUNT_EMAIL_VERIFICATION="optional")
def test_sign_up_invite_and_join_in_a_real_browser(
    page: Page, live_server: object
) -> None:
    base = str(live_server)
    page.goto(base + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Every mention")
    screenshot(page, "landing")

    page.get_by_role("link", name="Create a workspace").click()
    page.get_by_label("Email").fill("sam@skyline.example")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_label("Workspace name").fill("Skyline Airways")
    screenshot(page, "signup")
    page.get_by_role("button", name="Sign Up").click()

    expect(page).to_have_url(base + "/t/skyline-airways/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Skyline Airways")
    screenshot(page, "workspace-home")

    page.get_by_role("link", name="Members").click()
    page.get_by_label("Email").fill("nina@skyline.example")
    page.get_by_label("Role").select_option("agent")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to nina@skyline.example.")).to_be_visible()
    screenshot(page, "members")

    link = re.search(r"http://testserver(/invitations/\S+/)", str(mail.outbox[-1].body))
    assert link is not None
    guest = page.context.browser.new_context()  # type: ignore[union-attr]
    nina = guest.new_page()
    nina.goto(base + link.group(1))
    expect(nina.get_by_role("heading", level=1)).to_have_text("Join Skyline Airways")
    nina.get_by_label("Your name").fill("Nina")
    nina.locator("#id_password1").fill(PASSWORD)
    nina.locator("#id_password2").fill(PASSWORD)
    screenshot(nina, "invitation")
    nina.get_by_role("button", name="Create account and join").click()
    expect(nina).to_have_url(base + "/t/skyline-airways/")
    expect(nina.get_by_text("You are agent here.")).to_be_visible()
    guest.close()

    tenant = Tenant.objects.get(slug="skyline-airways")
    with tenant_context(tenant):
        roles = dict(Membership.objects.values_list("user__email", "role"))
    assert roles == {"sam@skyline.example": "owner", "nina@skyline.example": "agent"}
