"""The inbox in a real Chromium against the real stack: undo and edit during the
hold, catching up after the connection drops, read-only viewers, outsiders, the
keyboard shortcuts and the phone layout."""

import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Browser, expect

from helpdesk.models import Conversation, Message
from social.models import SocialAccount
from social.sandbox import network
from social.sandbox.models import Person, Post
from social.sandbox.setup import connect_demo_account
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.browser.conftest import agent_page, sandbox_apps, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.browser.test_inbox_journey import (
    LIVE,
    mark_page,
    send_reply,
    still_same_page,
)
from tests.factories import PASSWORD, membership_of
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    """What this process records (as a worker would) is pushed to the server's
    sockets through the stack's channel layer."""
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def connect_sandbox(live: LiveServer, tenant: Tenant, owner: User) -> SocialAccount:
    membership = membership_of(tenant, owner)
    with (
        override_settings(SITE_URL=live.url, SOCIAL_APPS=sandbox_apps(live.url)),
        tenant_context(tenant),
    ):
        brand = Brand.objects.get()
        return connect_demo_account(membership, brand, "acmeair")


def test_undo_during_the_hold_sends_nothing(
    browser: Browser, live: LiveServer, sandbox: None, owner: User, tenant: Tenant
) -> None:
    connect_sandbox(live, tenant, owner)
    hold = 10
    with tenant_context(tenant):
        Brand.objects.update(send_hold_seconds=hold)
    jo = Person.objects.create(handle="jo", name="Jo Martin", followers=300)
    network.create_post(jo, "@acmeair my flight AA12 is delayed again!!")

    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(live.url + "/t/acme-air/inbox/")
    row = page.locator(".conv-row", has_text="Jo Martin")
    expect(row).to_be_visible(timeout=LIVE)
    row.click()
    send_reply(page, "Sorry Jo, cheking AA12 now")
    held = page.locator("#timeline .msg-out").last
    expect(held).to_contain_text("Sending in")
    expect(page.locator("#limit-use")).to_have_text("1 of 2 public replies used")

    held.get_by_role("button", name="Edit").click()
    editor = held.locator(".edit-form textarea")
    expect(editor).to_have_value("Sorry Jo, cheking AA12 now")
    editor.fill("Sorry Jo, checking AA12 now")
    screenshot(page, "composer-edit")
    held.get_by_role("button", name="Save").click()
    expect(held.locator(".msg-body")).to_have_text("Sorry Jo, checking AA12 now")

    held.get_by_role("button", name="Undo").click()
    expect(held).to_contain_text("Undone · never sent")
    expect(page.locator("#limit-use")).to_have_text("0 of 2 public replies used")
    screenshot(page, "composer-undone")

    with tenant_context(tenant):
        message = Message.objects.get(direction="out")
    assert message.send_after is not None
    time.sleep(max(0.0, (message.send_after - timezone.now()).total_seconds()) + 4)
    with tenant_context(tenant):
        message = Message.objects.get(direction="out")
        conversation = Conversation.objects.get()
    assert (message.delivery_status, message.attempts, message.text) == (
        "cancelled",
        0,
        "Sorry Jo, checking AA12 now",
    )
    assert conversation.public_reply_count == 0
    assert Post.objects.filter(author__handle="acmeair").count() == 0


def test_the_page_catches_up_after_the_connection_drops(
    browser: Browser, live: LiveServer, owner: User, tenant: Tenant
) -> None:
    account = make_account(tenant)
    receive(account, item(text="@acmeair first!", author="c-1", handle="first"))
    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(live.url + "/t/acme-air/inbox/")
    expect(page.locator("#presence")).to_contain_text("Olivia online")
    mark_page(page)
    banner = page.locator("#connection-banner")
    expect(banner).to_be_hidden()

    live.stop()
    expect(banner).to_be_visible()
    expect(banner).to_have_text("Connection lost. Reconnecting…")
    screenshot(page, "connection-lost")
    # What happens while the page is away is stored with its sequence number.
    receive(
        account,
        item(
            text="@acmeair anyone there? my bag never arrived",
            author="c-2",
            handle="carla",
        ),
    )
    live.start()

    missed = page.locator(".conv-row", has_text="anyone there?")
    expect(missed).to_be_visible(timeout=40_000)
    expect(banner).to_be_hidden()
    expect(page.locator("#status-tabs .tab.active .tab-count")).to_have_text("2")
    assert still_same_page(page)
    screenshot(page, "caught-up")


def test_a_viewer_cannot_reply(
    browser: Browser, live: LiveServer, viewer: User, tenant: Tenant
) -> None:
    conversation = receive(make_account(tenant), item()).conversation
    page = agent_page(browser)
    sign_in(page, live.url, viewer.email, PASSWORD)
    page.goto(f"{live.url}/t/acme-air/inbox/{conversation.pk}/")
    expect(page.locator("#composer")).to_contain_text(
        "You have view-only access to this workspace."
    )
    expect(page.locator("#reply-text")).to_have_count(0)
    expect(page.locator("#assignee-select")).to_have_count(0)
    expect(page.locator('[data-action="status"]')).to_have_count(0)
    screenshot(page, "viewer-read-only")
    status = page.evaluate(
        """async (id) => {
          const token = document.querySelector('meta[name="csrf-token"]').content;
          const url = `/api/v1/t/acme-air/conversations/${id}/messages/`;
          const response = await fetch(url, {
            method: "POST",
            headers: {"Content-Type": "application/json", "X-CSRFToken": token},
            body: JSON.stringify({text: "I should not be able to send this"}),
          });
          return response.status;
        }""",
        conversation.pk,
    )
    assert status == 403
    with tenant_context(tenant):
        assert not Message.objects.filter(direction="out").exists()


def test_an_outsider_gets_404(
    browser: Browser,
    live: LiveServer,
    outsider: User,
    other_tenant: Tenant,
    tenant: Tenant,
) -> None:
    result = receive(make_account(tenant), item())
    conversation, message = result.conversation, result.message
    page = agent_page(browser)
    sign_in(page, live.url, outsider.email, PASSWORD)
    response = page.goto(f"{live.url}/t/acme-air/inbox/")
    assert response is not None
    assert response.status == 404
    assert "Acme" not in page.content()
    for path in (
        f"/t/acme-air/inbox/{conversation.pk}/",
        f"/t/acme-air/inbox/rows/{conversation.pk}/",
        f"/t/acme-air/conversations/{conversation.pk}/",
        f"/t/acme-air/conversations/{conversation.pk}/messages/{message.pk}/",
        f"/t/acme-air/conversations/{conversation.pk}/contact/",
    ):
        assert page.request.get(live.url + path).status == 404, path
    # Refused with its reason: closed at once with 4404 (no such workspace), before
    # any frame.
    refusal = page.evaluate(
        """() => new Promise((resolve) => {
          const socket = new WebSocket(`ws://${location.host}/ws/t/acme-air/`);
          const frames = [];
          socket.onmessage = (message) => frames.push(message.data);
          socket.onclose = (event) => resolve({ code: event.code, frames });
        })"""
    )
    assert refusal == {"code": 4404, "frames": []}


def test_keyboard_shortcuts_and_the_phone_layout(
    browser: Browser, live: LiveServer, owner: User, agent: User, tenant: Tenant
) -> None:
    account = make_account(tenant)
    now = timezone.now()
    ids = [
        receive(
            account,
            item(
                text=text,
                author=f"k-{n}",
                handle=handle,
                created_at=now - timedelta(minutes=30 - n),
            ),
        ).conversation.pk
        for n, (handle, text) in enumerate(
            [
                ("amara", "@acmeair my seat was double booked on AA7"),
                ("bruno", "@acmeair the app will not load my boarding pass"),
                ("chen", "@acmeair how do I add a bike to my booking?"),
            ]
        )
    ]
    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(live.url + "/t/acme-air/inbox/")
    expect(page.locator("#presence")).to_contain_text("Olivia online")
    base = f"{live.url}/t/acme-air/inbox/"

    page.keyboard.press("j")
    expect(page).to_have_url(f"{base}{ids[0]}/")
    expect(page.locator("#thread")).to_contain_text("double booked")
    page.keyboard.press("j")
    expect(page).to_have_url(f"{base}{ids[1]}/")
    page.keyboard.press("k")
    expect(page).to_have_url(f"{base}{ids[0]}/")
    expect(page.locator(".conv-row.selected")).to_have_attribute("data-id", str(ids[0]))
    page.keyboard.press("r")
    expect(page.locator("#reply-text")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    expect(page.locator("#assignee-select")).to_be_focused()
    page.locator("#assignee-select").select_option(label="Andy")
    expect(page.locator(f"#conv-{ids[0]} .avatar.xs")).to_have_attribute(
        "title", "Assigned to Andy"
    )
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("e")
    expect(page.locator("#status-pill")).to_have_text("Resolved")
    expect(page.locator(f"#conv-{ids[0]}")).to_have_count(0)
    expect(page.locator("#conversation-list .conv-row")).to_have_count(2)
    screenshot(page, "keyboard-resolved")
    with tenant_context(tenant):
        first = Conversation.objects.get(pk=ids[0])
    assert (first.status, first.assignee_id) == ("resolved", agent.pk)

    phone = agent_page(browser, width=390)
    sign_in(phone, live.url, owner.email, PASSWORD)
    phone.goto(live.url + "/t/acme-air/inbox/")
    expect(phone.locator(".pane-list")).to_be_visible()
    expect(phone.locator("#thread-pane")).to_be_hidden()
    screenshot(phone, "phone-inbox")
    phone.locator(".conv-row", has_text="bruno").click()
    expect(phone.locator("#thread")).to_contain_text("boarding pass")
    expect(phone.locator(".pane-list")).to_be_hidden()
    expect(phone.get_by_role("link", name="← Inbox")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    screenshot(phone, "phone-thread")
    phone.get_by_role("link", name="← Inbox").click()
    expect(phone.locator(".pane-list")).to_be_visible()
    expect(phone).to_have_url(re.compile(r"/t/acme-air/inbox/$"))


def test_contact_details_show_field_errors_and_contacts_merge(
    browser: Browser, live: LiveServer, agent: User, tenant: Tenant
) -> None:
    account = make_account(tenant)
    x_account = make_account(tenant, platform="x", handle="acmehelp")
    here = receive(
        account, item(text="@acmeair lost my bag", author="jo-s", handle="jo_martin")
    ).conversation
    elsewhere = receive(
        x_account,
        item(
            text="@acmehelp bag still missing",
            author="jo-x",
            handle="jo_martin_x",
            platform="x",
        ),
    ).conversation
    page = agent_page(browser)
    sign_in(page, live.url, agent.email, PASSWORD)
    page.goto(f"{live.url}/t/acme-air/inbox/{here.pk}/")
    panel = page.locator("#contact-panel")
    panel.get_by_label("Email").fill("not an email")
    panel.get_by_role("button", name="Save details").click()
    expect(panel.locator('.field-error[data-field="email"]')).to_have_text(
        "Enter a valid email address."
    )
    panel.get_by_label("Email").fill("jo@example.com")
    panel.get_by_label("CRM id").fill("CRM-4411")
    panel.get_by_role("button", name="Save details").click()
    expect(panel.locator(".form-status")).to_have_text("Saved")

    panel.get_by_text("Merge with another contact").click()
    panel.get_by_label("Search contacts").fill("jo_martin_x")
    candidate = panel.locator(".merge-candidates li", has_text="@jo_martin_x")
    expect(candidate).to_be_visible()
    screenshot(page, "contact-merge")
    candidate.get_by_role("button").click()
    expect(panel.locator(".identities")).to_contain_text("@jo_martin_x")
    expect(panel.locator(".history")).to_contain_text("bag still missing")
    with tenant_context(tenant):
        merged = Conversation.objects.get(pk=elsewhere.pk)
        contact = merged.contact
    assert merged.contact_id == here.contact_id
    assert (contact.email, contact.external_crm_id) == ("jo@example.com", "CRM-4411")
