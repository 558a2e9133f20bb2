"""The seeded demo inbox in a real Chromium: how it looks, a failed delivery with its
reason and Retry, saved replies, notes, and the composer's confirmations (a
near-duplicate reply, R6; a reply written against a stale view, R7)."""

import time
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import Browser, Page, expect

from helpdesk.models import Conversation, Message
from helpdesk.services.inbound import record_inbound_message
from social.connectors.base import Author, InboundItem
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.browser.conftest import agent_page, sandbox_apps, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(live: LiveServer) -> Iterator[Tenant]:
    with (
        override_settings(SITE_URL=live.url, SOCIAL_APPS=sandbox_apps(live.url)),
        override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS),
    ):
        call_command("seed_demo", verbosity=0)
        yield Tenant.objects.get(slug="acme-air")


def open_conversation(page: Page, tenant: Tenant, preview: str) -> Conversation:
    with tenant_context(tenant):
        conversation = Conversation.objects.get(preview__startswith=preview)
    page.locator(f"#conv-{conversation.pk} .conv-link").click()
    expect(page.locator("#thread")).to_contain_text(preview)
    return conversation


def test_the_demo_inbox(browser: Browser, live: LiveServer, demo: Tenant) -> None:
    page = agent_page(browser)
    sign_in(page, live.url, "agent@acme-air.example", "earshot-demo")
    page.goto(live.url + "/t/acme-air/inbox/")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(12)
    expect(page.locator("#presence")).to_contain_text("Andy Brooks online")
    screenshot(page, "demo-inbox")

    open_conversation(page, demo, "Bag tag is AA482913")
    expect(page.locator("#timeline .msg-in.msg-private")).to_contain_text("AA482913")
    expect(page.locator("#timeline .badge-invite")).to_have_count(1)
    screenshot(page, "demo-thread-public-then-private")

    page.locator('#status-tabs [data-status="all"]').click()
    berlin = open_conversation(page, demo, "@AcmeAirHelp is the 7am to Berlin")
    failed = page.locator("#timeline .msg.ds-failed")
    expect(failed).to_contain_text("Not delivered. X said:")
    expect(failed).to_contain_text("access token was revoked")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    screenshot(page, "demo-failed-delivery")
    failed.get_by_role("button", name="Retry").click()
    # The worker takes it again (and X, unreachable here, refuses it again).
    deadline = time.monotonic() + 20
    attempts = 0
    while time.monotonic() < deadline and not attempts:
        with tenant_context(demo):
            attempts = Message.objects.get(
                conversation=berlin, direction="out"
            ).attempts
        time.sleep(0.3)
    assert attempts >= 1

    open_conversation(page, demo, "@AcmeAirHelp stuck at the gate")
    expect(page.locator("#timeline .note")).to_contain_text("aircraft swap")
    page.get_by_role("tab", name="Internal note").click()
    page.get_by_label("Internal note").fill("Offered lounge access at the gate.")
    screenshot(page, "demo-composer-note")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#timeline .note").last).to_contain_text("lounge access")


def test_the_composer_asks_to_confirm_duplicates_and_stale_views(
    browser: Browser, live: LiveServer, demo: Tenant
) -> None:
    page = agent_page(browser)
    sign_in(page, live.url, "agent@acme-air.example", "earshot-demo")
    page.goto(live.url + "/t/acme-air/inbox/")
    french = open_conversation(page, demo, "@acmeair mon vol AA31")

    # A saved reply, filled for this customer and agent.
    page.locator("#saved-reply").select_option(label="Delayed flight")
    expect(page.locator("#reply-text")).to_have_value(
        "Hi Samira, I'm really sorry about the delay. Could you send us your booking "
        "reference in a private message so I can check your connection?"
    )
    screenshot(page, "demo-composer-saved-reply")

    # The customer writes again while the agent is typing: a stale view.
    assert french.social_account_id is not None
    with tenant_context(demo):
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=french.social_account_id
        )
        first = Message.objects.filter(conversation=french).earliest("created_at")
        author = first.author_identity
        assert author is not None
        record_inbound_message(
            account,
            InboundItem(
                platform="sandbox",
                external_id="demo-stale-1",
                author=Author(external_id=author.external_id, handle=author.handle),
                text="Still nothing at the gate. Anyone?",
                created_at=first.created_at,
                visibility="public",
                thread_ref=french.public_thread_ref,
                mentions_account=True,
            ),
        )
    expect(page.locator("#timeline")).to_contain_text("Still nothing at the gate")
    page.get_by_role("button", name="Send", exact=True).click()
    confirm = page.locator("#reply-confirm")
    expect(confirm).to_contain_text("The customer wrote again since you opened")
    screenshot(page, "demo-composer-confirm-stale")
    confirm.get_by_role("button", name="Send anyway").click()
    expect(page.locator("#timeline .msg-out").last).to_contain_text("Sending in")

    # A near-duplicate of a recent public reply of the brand (R6).
    open_conversation(page, demo, "@acmeair will the Lisbon route")
    page.locator("#reply-text").fill(
        "Thank you Yuki! So glad you enjoyed it. Have a lovely flight."
    )
    page.get_by_role("button", name="Send", exact=True).click()
    expect(confirm).to_contain_text("almost the same as a recent public reply")
    screenshot(page, "demo-composer-confirm-duplicate")
    confirm.get_by_role("button", name="Keep editing").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#reply-text")).to_have_value(
        "Thank you Yuki! So glad you enjoyed it. Have a lovely flight."
    )
