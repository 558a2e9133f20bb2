"""A burst of Sandbox posts raises a spike alert, and its banner appears live: on
the inbox (through the inbox's socket) and on another page (through the banner's
own socket), with no reload; the alert page shows the terms and acknowledges."""

import time
from collections.abc import Iterator

import pytest
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Browser, expect

from helpdesk.models import Message
from social.sandbox import network
from social.sandbox.models import Person
from spikes.models import SpikeAlert
from spikes.services import detect_spikes
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.browser.test_inbox_journey import LIVE, mark_page, still_same_page
from tests.browser.test_inbox_live import connect_sandbox
from tests.factories import PASSWORD
from tests.spikes.support import BURST, seed_history

pytestmark = pytest.mark.django_db(transaction=True)

POSTS = 14


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def wait_for_messages(tenant: Tenant, count: int) -> None:
    deadline = time.monotonic() + LIVE / 1000
    while time.monotonic() < deadline:
        with tenant_context(tenant):
            if Message.objects.filter(direction="in").count() >= count:
                return
        time.sleep(0.2)
    pytest.fail(f"the worker recorded fewer than {count} posts")


def test_a_burst_of_posts_shows_the_spike_banner_live(
    browser: Browser,
    live: LiveServer,
    sandbox: None,
    owner: User,
    agent: User,
    tenant: Tenant,
) -> None:
    connect_sandbox(live, tenant, owner)
    with tenant_context(tenant):
        brand = Brand.objects.get()
        Brand.objects.filter(pk=brand.pk).update(spike_min_count=5)
    # Four weeks of one message per five minutes at this hour of the week.
    seed_history(tenant, brand, timezone.now(), per_bucket=1)

    inbox = agent_page(browser)
    sign_in(inbox, live.url, agent.email, PASSWORD)
    inbox.goto(live.url + "/t/acme-air/inbox/")
    mark_page(inbox)
    home = agent_page(browser)
    sign_in(home, live.url, owner.email, PASSWORD)
    home.goto(live.url + "/t/acme-air/alerts/")
    expect(home.locator("#spike-watch")).to_contain_text("Acme Air")
    mark_page(home)
    expect(inbox.locator("#spike-banner .banner")).to_have_count(0)

    people = [
        Person.objects.create(handle=f"traveller{n}", name=f"Traveller {n}")
        for n in range(POSTS)
    ]
    for n, person in enumerate(people):
        network.create_post(person, f"@acmeair {BURST[n % len(BURST)]}")
    wait_for_messages(tenant, POSTS)
    with tenant_context(tenant):
        result = detect_spikes(tenant, now=timezone.now())
    assert len(result.opened) == 1

    for page in (inbox, home):
        banner = page.locator("#spike-banner .banner.spike")
        expect(banner).to_be_visible(timeout=LIVE)
        expect(banner).to_contain_text("Spike on Acme Air:")
        expect(banner).to_contain_text("aa31")
        assert still_same_page(page)
    screenshot(inbox, "spike-banner-inbox")
    screenshot(home, "spike-banner-alerts")
    # The alerts page's banner socket only listens: Olivia is not present in the
    # inbox, where Andy works (asked afresh, not from the inbox's live list).
    online = inbox.evaluate(
        """async (url) => {
          const reply = await fetch(url, { credentials: "same-origin" });
          const html = new DOMParser().parseFromString(await reply.text(), "text/html");
          return html.querySelector(".presence-names").textContent;
        }""",
        "/t/acme-air/inbox/presence/",
    )
    assert online == "Andy online"
    expect(inbox.locator("#presence .presence-names")).to_have_text("Andy online")

    home.locator("#spike-banner").get_by_role("link", name="See the spike").click()
    expect(home.locator(".spike-terms")).to_contain_text("aa31")
    expect(home.locator(".spike-samples li")).to_have_count(5)
    screenshot(home, "spike-alert-page")
    home.get_by_role("button", name="Acknowledge").click()
    expect(home.locator("#acknowledged")).to_contain_text(owner.email)
    # The inbox's banner follows: acknowledged, still open.
    expect(inbox.locator("#spike-banner .banner.spike.acknowledged")).to_be_visible(
        timeout=LIVE
    )
    screenshot(inbox, "spike-banner-acknowledged")
    with tenant_context(tenant):
        (alert,) = SpikeAlert.objects.all()
    assert alert.acknowledged_by_id == owner.pk
    assert alert.status == "open"
