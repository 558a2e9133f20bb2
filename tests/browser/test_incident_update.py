"""An incident update to 20 Sandbox customers, in a real Chromium against the real
stack (uvicorn, a celery worker, Redis, the Sandbox over HTTP): the incident's
rule links the customers' posts as they arrive, the agent previews the
personalised update, sends it, and watches the progress live until all 20 are
sent; the Sandbox then shows 20 different replies, one per customer."""

import re
import time
from collections.abc import Iterator

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, expect

from helpdesk.models import Message
from incidents.models import Incident, IncidentLink, UpdateRecipient
from incidents.services import create_incident
from social.sandbox import network
from social.sandbox.models import Person, Post
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.browser.conftest import ARTIFACTS, agent_page, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.browser.test_inbox_live import connect_sandbox
from tests.factories import PASSWORD, membership_of
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMERS = 20
HOLD = 3  # seconds: a short hold in the test brand (R5 still applies)
LIVE = 60_000
TEXT = (
    "{greeting} {first_name}, AA31 is cancelled and we are sorry. We have "
    "rebooked you on AA35 tomorrow at 09:10; the new boarding pass is in the app. "
    "{agent_name}"
)


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def wait_until(check: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_an_update_reaches_20_sandbox_customers_watched_live(
    browser: Browser, live: LiveServer, sandbox: None, owner: User, tenant: Tenant
) -> None:
    connect_sandbox(live, tenant, owner)
    with tenant_context(tenant):
        Brand.objects.update(send_hold_seconds=HOLD)
    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    # The agent opens the incident with a rule, before the customers write.
    page.goto(f"{live.url}/t/{tenant.slug}/incidents/")
    form = page.locator("#incident-create")
    form.get_by_label("Title").fill("AA31 cancelled, 5 Dec")
    form.get_by_label("Terms").fill("AA31")
    form.get_by_label("Holding statement").fill(
        "AA31 is cancelled; we are rebooking everyone."
    )
    screenshot(page, "incident-list-new")
    form.get_by_role("button", name="Open incident").click()
    page.wait_for_url(re.compile(r"/incidents/\d+/$"))
    with tenant_context(tenant):
        incident = Incident.objects.get()
    names = [
        "Ana Silva", "Ben Okafor", "Chloé Martin", "Dev Patel", "Eva Novak",
        "Finn Berg", "Gia Rossi", "Hana Sato", "Ivan Petrov", "Jo Keller",
        "Kai Müller", "Lena Weiss", "Mo Haddad", "Nina Kowalski", "Omar Aziz",
        "Pia Larsen", "Quinn Byrne", "Rosa Díaz", "Sam Lee", "Tess Moreau",
    ]  # fmt: skip
    for n, name in enumerate(names):
        person = Person.objects.create(
            handle=name.split()[0].lower() + str(n), name=name, followers=50 + n
        )
        network.create_post(person, f"@acmeair AA31 cancelled?! What now? ({n})")

    def linked() -> int:
        with tenant_context(tenant):
            return IncidentLink.objects.filter(incident=incident).count()

    # The incident's rule links each new conversation after its inbound commit.
    wait_until(lambda: linked() == CUSTOMERS, timeout=60, what="20 linked")

    page.reload()
    expect(page.locator("#linked-count")).to_have_text("20")
    expect(page.locator("#unanswered-count")).to_have_text("20")
    expect(page.locator("#holding-text")).to_have_text(
        "AA31 is cancelled; we are rebooking everyone."
    )
    page.locator("#update-text").fill(TEXT)
    page.get_by_role("button", name="Preview").click()
    previews = page.locator("#previews li")
    expect(previews).to_have_count(3)
    expect(previews.first).to_contain_text("Hi Ana, AA31 is cancelled")
    expect(previews.nth(1)).to_contain_text("Hello Ben, AA31 is cancelled")
    screenshot(page, "incident-before")

    send = page.locator("#send-button")
    expect(send).to_be_enabled()
    started = time.monotonic()
    send.dblclick()  # a double click makes one update
    sent = page.locator("#count-sent")
    expect(sent).to_have_text(re.compile(r"^([1-9]|1[0-9])$"), timeout=LIVE)
    screenshot(page, "incident-during")
    expect(sent).to_have_text("20", timeout=LIVE)
    expect(page.locator("#update-state")).to_contain_text("Done", timeout=LIVE)
    recipients_done = time.monotonic() - started
    screenshot(page, "incident-after")

    def delivered() -> int:
        with tenant_context(tenant):
            return Message.objects.filter(
                direction="out", delivery_status="sent"
            ).count()

    wait_until(lambda: delivered() == CUSTOMERS, timeout=60, what="20 delivered")
    all_delivered = time.monotonic() - started
    with tenant_context(tenant):
        statuses = sorted(UpdateRecipient.objects.values_list("status", flat=True))
        texts = list(
            Message.objects.filter(direction="out").values_list("text", flat=True)
        )
    assert statuses == ["sent"] * CUSTOMERS
    assert len(set(texts)) == CUSTOMERS  # no two customers got the same post
    replies = Post.objects.filter(author__handle="acmeair")
    assert replies.count() == CUSTOMERS
    assert sorted(
        p.in_reply_to.author.name for p in replies if p.in_reply_to
    ) == sorted(names)
    page.reload()
    expect(page.locator("#unanswered-count")).to_have_text("0")
    screenshot(page, "incident-delivered")
    page.goto(f"{live.url}/t/{tenant.slug}/incidents/")
    expect(page.locator(".incident-table").first).to_contain_text("20")
    screenshot(page, "incident-list")
    (ARTIFACTS / "incident-figures.txt").write_text(
        f"sent={statuses.count('sent')} skipped={statuses.count('skipped')} "
        f"failed={statuses.count('failed')} recipients_done={recipients_done:.1f}s "
        f"all_delivered={all_delivered:.1f}s hold={HOLD}s\n"
    )


def test_agents_link_from_the_list_and_from_a_thread(
    browser: Browser, live: LiveServer, owner: User, tenant: Tenant
) -> None:
    account = make_account(tenant)
    for n, handle in enumerate(("ana", "ben", "cleo")):
        receive(account, item(text=f"AA31? ({n})", author=f"c-{n}", handle=handle))
    with tenant_context(tenant):
        incident = create_incident(
            membership_of(tenant, owner), title="AA31 cancelled, 5 Dec"
        )
    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(f"{live.url}/t/{tenant.slug}/inbox/")
    page.get_by_role("button", name="Select").click()
    expect(page.locator("#bulk-incident")).to_have_value(str(incident.pk))
    page.locator(".conv-row", has_text="Ana").locator(".bulk-check").check()
    page.locator(".conv-row", has_text="Ben").locator(".bulk-check").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.get_by_role("button", name="Link to incident").click()
    expect(page.locator("#bulk-form .form-note")).to_have_text(
        "Linked 2 conversations."
    )
    screenshot(page, "incident-bulk-link")
    page.get_by_role("button", name="Done").click()
    page.locator(".conv-row", has_text="Cleo").click()
    link = page.locator("[data-incident-link]")
    link.locator("summary").click()
    expect(link.locator("select")).to_have_value(str(incident.pk))
    link.get_by_role("button", name="Link").click()
    expect(link.locator(".form-note")).to_have_text("Linked 1 conversation.")
    screenshot(page, "incident-thread-link")
    with tenant_context(tenant):
        vias = sorted(
            IncidentLink.objects.filter(incident=incident).values_list(
                "conversation__contact__display_name", "via"
            )
        )
    assert vias == [("Ana", "bulk"), ("Ben", "bulk"), ("Cleo", "hand")]
