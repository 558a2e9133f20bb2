"""The alerts page's list follows spikes live: a burst of Sandbox posts opens an
alert and it appears in the page's Alerts list (not only in the banner), and a
member's acknowledgement on another page shows there too, with no reload."""

from collections.abc import Iterator

import pytest
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Browser, expect

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
from tests.browser.test_spike_banner import wait_for_messages
from tests.factories import PASSWORD
from tests.spikes.support import BURST, seed_history

pytestmark = pytest.mark.django_db(transaction=True)

POSTS = 14


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def test_a_spike_that_opens_shows_in_the_alerts_list_live(
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
    seed_history(tenant, brand, timezone.now(), per_bucket=1)

    alerts = agent_page(browser)
    sign_in(alerts, live.url, owner.email, PASSWORD)
    alerts.goto(live.url + "/t/acme-air/alerts/")
    listing = alerts.locator("#spike-alerts")
    expect(listing).to_contain_text("No spikes yet.")
    expect(listing.locator(".spike-row")).to_have_count(0)
    mark_page(alerts)

    people = [
        Person.objects.create(handle=f"passenger{n}", name=f"Passenger {n}")
        for n in range(POSTS)
    ]
    for n, person in enumerate(people):
        network.create_post(person, f"@acmeair {BURST[n % len(BURST)]}")
    wait_for_messages(tenant, POSTS)
    with tenant_context(tenant):
        result = detect_spikes(tenant, now=timezone.now())
    assert len(result.opened) == 1
    with tenant_context(tenant):
        (alert,) = SpikeAlert.objects.all()

    row = listing.locator(".spike-row.open")
    expect(row).to_have_count(1, timeout=LIVE)
    expect(row.get_by_role("link")).to_have_text(
        f"Acme Air: {alert.peak_count} in 5 minutes"
    )
    expect(row).to_contain_text("Open")
    expect(row).not_to_contain_text("acknowledged")
    expect(listing).not_to_contain_text("No spikes yet.")
    assert still_same_page(alerts)
    screenshot(alerts, "spike-alerts-list-live")

    # Andy acknowledges it on the alert's own page; Olivia's list follows.
    other = agent_page(browser)
    sign_in(other, live.url, agent.email, PASSWORD)
    other.goto(live.url + f"/t/acme-air/alerts/{alert.pk}/")
    other.get_by_role("button", name="Acknowledge").click()
    expect(other.locator("#acknowledged")).to_contain_text(agent.email)
    expect(row).to_contain_text("Open · acknowledged", timeout=LIVE)
    assert still_same_page(alerts)
    with tenant_context(tenant):
        alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by_id) == ("open", agent.pk)
