"""The agent inbox in a real Chromium against a real server process, a real Celery
worker, PostgreSQL and Redis, with the Sandbox network as the customer's platform.

The journey: sign up, add a brand, connect a Sandbox account; a customer's untagged
complaint arrives live; an agent replies publicly (held, then delivered to the
Sandbox post) while a second agent watches live; the third public reply is refused
and the conversation moves to private; the customer's private message joins it.
"""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from helpdesk.models import Conversation, Message
from social.models import ListeningRule
from social.sandbox.models import Person, Post
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import LiveServer
from tests.factories import PASSWORD, add_member, make_user

pytestmark = pytest.mark.django_db(transaction=True)

LIVE = 25_000  # ms an expectation waits for something that travels through the worker


def mark_page(page: Page) -> None:
    """Leave a marker a reload would wipe: proof that updates arrived live."""
    page.evaluate("window.__earshotNoReload = true")


def still_same_page(page: Page) -> bool:
    return bool(page.evaluate("window.__earshotNoReload === true"))


def sign_up_and_connect(sam: Page, base: str) -> Tenant:
    sam.goto(base + "/accounts/signup/")
    sam.get_by_label("Email").fill("sam@skyline.example")
    sam.locator("#id_password1").fill(PASSWORD)
    sam.locator("#id_password2").fill(PASSWORD)
    sam.get_by_label("Workspace name").fill("Skyline Air")
    sam.get_by_role("button", name="Sign Up").click()
    expect(sam).to_have_url(base + "/t/skyline-air/")

    sam.get_by_role("link", name="Brands").click()
    sam.get_by_label("Name").fill("Skyline Care")
    sam.get_by_label("Timezone").fill("Europe/Lisbon")
    sam.get_by_role("button", name="Add brand").click()
    expect(sam.get_by_text("Brand Skyline Care added.")).to_be_visible()

    sam.get_by_role("link", name="Accounts").click()
    care = sam.locator(
        "section.brand-accounts",
        has=sam.get_by_role("heading", name="Skyline Care"),
    )
    care.get_by_role("link", name="Connect Sandbox").click()
    sam.get_by_label("Brand account handle").fill("skylineair")
    sam.get_by_label("Display name").fill("Skyline Air")
    sam.get_by_role("button", name="Authorize").click()
    expect(sam.get_by_text("Connected @skylineair to Skyline Care.")).to_be_visible()
    screenshot(sam, "accounts-connected")
    return Tenant.objects.get(slug="skyline-air")


def prepare_workspace(tenant: Tenant) -> None:
    """What an admin sets in Settings: a listening rule, a short hold, a signature,
    a display name, and a second agent."""
    User.objects.filter(email="sam@skyline.example").update(display_name="Sam Rivera")
    nina = make_user("nina@skyline.example", display_name="Nina Patel")
    add_member(tenant, nina, Membership.Role.AGENT)
    with tenant_context(tenant):
        brand = Brand.objects.get(name="Skyline Care")
        Brand.objects.filter(pk=brand.pk).update(
            send_hold_seconds=6, signature_rules={"sandbox": " ^{initials}"}
        )
        ListeningRule.objects.create(
            tenant=tenant,
            brand=brand,
            name="Untagged mentions of Skyline",
            query='"skyline air" OR skylineair',
        )


def be_customer(page: Page, base: str, handle: str, name: str) -> None:
    page.goto(base + "/sandbox/")
    page.get_by_label("Handle").fill(handle)
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Be this person").click()
    expect(page.get_by_text(f"You are @{handle}")).to_be_visible()


def send_reply(page: Page, text: str) -> None:
    page.locator("#reply-text").press_sequentially(text, delay=5)
    page.get_by_role("button", name="Send", exact=True).click()


def test_the_agent_inbox_journey(
    browser: Browser, live: LiveServer, sandbox: None
) -> None:
    base = live.url
    sam = agent_page(browser)
    tenant = sign_up_and_connect(sam, base)
    prepare_workspace(tenant)

    sam.goto(base + "/t/skyline-air/inbox/")
    expect(sam.locator("#presence")).to_contain_text("Sam Rivera online")
    mark_page(sam)
    screenshot(sam, "inbox-empty")

    # A customer posts a complaint that does not tag the brand.
    jo = agent_page(browser)
    be_customer(jo, base, "jo_travels", "Jo Martin")
    jo.get_by_label("Post text").fill(
        "Skyline Air lost my bag in Lisbon and nobody answers the phone"
    )
    jo.get_by_role("button", name="Post", exact=True).click()

    row = sam.locator(".conv-row", has_text="Jo Martin")
    expect(row).to_be_visible(timeout=LIVE)
    expect(row).to_contain_text("Untagged")
    expect(row).to_have_class(re.compile(r"\bunread\b"))
    assert still_same_page(sam)
    screenshot(sam, "inbox-live-row")

    # A second agent opens the same conversation.
    nina = agent_page(browser)
    sign_in(nina, base, "nina@skyline.example", PASSWORD)
    nina.goto(base + "/t/skyline-air/inbox/")
    mark_page(nina)
    nina.locator(".conv-row", has_text="Jo Martin").click()
    row.click()
    expect(sam.locator("#thread")).to_contain_text("nobody answers the phone")
    expect(sam).to_have_url(
        f"{base}/t/skyline-air/inbox/{row.get_attribute('data-id')}/"
    )
    expect(sam.locator("#activity")).to_contain_text("Nina Patel is viewing")
    public = sam.locator('input[name="visibility"][value="public"]')
    expect(public).to_be_checked()
    expect(sam.locator('input[name="visibility"][value="private"]')).to_be_disabled()
    expect(sam.locator("#reason-private")).to_contain_text("Answer publicly first")
    expect(sam.locator("#limit-use")).to_have_text("0 of 2 public replies used")
    expect(sam.locator("#signature-preview")).to_have_text("Signed ^SR")
    expect(sam.locator("#contact-panel")).to_contain_text("@jo_travels")
    screenshot(sam, "thread-composer-public")

    # Sam replies publicly; Nina sees "replying", then the message, live.
    sam.locator("#reply-text").press_sequentially("Jo, I'm so sorry about your bag.")
    expect(nina.locator("#activity")).to_contain_text("Sam Rivera is replying")
    expect(nina.locator(".conv-row.selected [data-watchers]")).to_have_text(
        "Sam replying…"
    )
    screenshot(nina, "second-agent-sees-replying")
    sam.locator("#reply-text").press_sequentially(" I'm checking Lisbon now.")
    expect(sam.locator("#char-count")).to_have_text("61 / 500")
    sam.get_by_role("button", name="Send", exact=True).click()
    held = sam.locator("#timeline .msg-out").last
    expect(held).to_contain_text("Sending in")
    expect(held.get_by_role("button", name="Undo")).to_be_visible()
    expect(held.get_by_role("button", name="Edit")).to_be_visible()
    expect(sam.locator("#reply-text")).to_have_value("")
    screenshot(sam, "composer-hold")
    seen_by_nina = nina.locator("#timeline .msg-out").last
    expect(seen_by_nina).to_contain_text("I'm checking Lisbon now. ^SR")
    expect(nina.locator("#pending-other")).to_contain_text(
        "Sam Rivera's public reply is about to be sent"
    )
    screenshot(nina, "second-agent-sees-new-message")

    # After the hold the worker delivers it to the Sandbox post.
    expect(held).to_contain_text("Sent", timeout=LIVE)
    expect(seen_by_nina).to_contain_text("Sent", timeout=LIVE)
    jo.reload()
    expect(jo.locator(".sb-reply").first).to_have_text(
        "@skylineair brand: Jo, I'm so sorry about your bag. I'm checking Lisbon now. "
        "^SR"
    )
    screenshot(jo, "sandbox-reply-delivered")

    # Nina answers publicly too: two of two.
    expect(nina.locator("#pending-other")).to_have_count(0, timeout=LIVE)
    expect(nina.locator("#limit-use")).to_have_text("1 of 2 public replies used")
    send_reply(nina, "Jo, Nina here: your bag is on the next flight from Lisbon.")
    ninas = nina.locator("#timeline .msg-out", has_text="next flight from Lisbon")
    expect(ninas).to_contain_text("Sending in")
    expect(ninas).to_contain_text("Sent", timeout=LIVE)

    # The third public reply is refused, and Move to private is offered.
    # Sam's page has taken in Nina's delivery (its status event refreshes the
    # composer, which would undo the tampering below if it came after it).
    expect(
        sam.locator("#timeline .msg-out", has_text="next flight from Lisbon")
    ).to_contain_text("Sent", timeout=LIVE)
    expect(sam.locator("#limit-use")).to_have_text("2 of 2 public replies used")
    expect(sam.locator("#pending-other")).to_have_count(0, timeout=LIVE)
    expect(public).to_be_disabled()
    expect(sam.locator("#move-private-button")).to_be_visible()
    screenshot(sam, "composer-limit-reached")
    # A stale composer (public still chosen) gets the server's refusal.
    sam.evaluate(
        """() => {
          const radio = document.querySelector('input[value="public"]');
          radio.disabled = false;
          radio.checked = true;
        }"""
    )
    send_reply(sam, "One more thing, Jo")
    refusal = sam.locator("#reply-error")
    expect(refusal).to_contain_text("You have replied publicly 2 times in this thread")
    screenshot(sam, "composer-refused")

    refusal.get_by_role("button", name="Move to private").click()
    dialog = sam.locator("#move-private-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("All 2 public replies are used")
    dialog.get_by_label("Private message").fill(
        "Hi Jo, Sam from Skyline here. Could you send me your bag tag number?"
    )
    screenshot(sam, "move-private-dialog")
    dialog.get_by_role("button", name="Move to private").click()
    expect(sam.locator("#channel-pill")).to_contain_text("Private channel")
    private_out = sam.locator("#timeline .msg-out.msg-private")
    expect(private_out).to_contain_text("Could you send me your bag tag number?")
    expect(sam.locator('input[name="visibility"][value="private"]')).to_be_checked()
    expect(private_out).to_contain_text("Sent", timeout=LIVE)

    # The customer answers in private; it lands in the same conversation, live.
    jo.reload()
    expect(jo.locator(".sb-dms")).to_contain_text("Could you send me your bag tag")
    jo.get_by_label("Message text").fill("Tag AA482913, a blue hard case")
    jo.get_by_role("button", name="Send message").click()
    landed = sam.locator("#timeline .msg-in.msg-private")
    expect(landed).to_contain_text("Tag AA482913", timeout=LIVE)
    expect(landed.locator(".badge-private")).to_have_text("Private")
    expect(nina.locator("#timeline .msg-in.msg-private")).to_contain_text(
        "Tag AA482913", timeout=LIVE
    )
    assert still_same_page(sam)
    assert still_same_page(nina)
    screenshot(sam, "thread-private-landed")

    with tenant_context(tenant):
        conversation = Conversation.objects.get()
        timeline = list(
            Message.objects.filter(conversation=conversation)
            .order_by("created_at", "id")
            .values_list("direction", "visibility", "delivery_status")
        )
    assert (conversation.origin, conversation.channel_state) == ("listening", "private")
    assert timeline == [
        ("in", "public", "received"),
        ("out", "public", "sent"),
        ("out", "public", "sent"),
        ("out", "private", "sent"),
        ("in", "private", "received"),
    ]
    assert Post.objects.filter(author__handle="skylineair").count() == 2
    assert Person.objects.get(handle="jo_travels").received.count() == 1
