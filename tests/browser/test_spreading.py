"""Spreading (R13) in a real Chromium: a Sandbox thread gains reposts and likes (a
crowd on the Sandbox's own page), the engagement refresh runs, and the agent sees
the "Spreading" flag appear live in the list and the thread, without reloading."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Browser, expect

from helpdesk.models import Conversation
from social import http as social_http
from social.engagement import refresh_engagement
from social.sandbox import network
from social.sandbox.models import Person
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.browser.test_inbox_journey import LIVE, mark_page, still_same_page
from tests.browser.test_inbox_live import connect_sandbox
from tests.factories import PASSWORD
from tests.social.fakeserver import loopback_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    """The refresh runs in this process (as beat's task would in a worker); its
    events reach the server's sockets through the stack's channel layer."""
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        social_http.install_client(loopback_client())
        yield


def test_a_thread_that_spreads_is_flagged_live_in_the_list_and_the_thread(
    browser: Browser, live: LiveServer, sandbox: None, owner: User, tenant: Tenant
) -> None:
    connect_sandbox(live, tenant, owner)
    jo = Person.objects.create(handle="jo", name="Jo Martin", followers=300)
    ben = Person.objects.create(handle="ben_flies", name="Ben", followers=12)
    complaint, _ = network.create_post(
        jo, "@acmeair you lost my bag in Lisbon and nobody answers. 3rd time!!"
    )
    network.create_post(ben, "@acmeair can I bring a second cabin bag?")

    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(live.url + "/t/acme-air/inbox/")
    jo_row = page.locator(".conv-row", has_text="Jo Martin")
    expect(jo_row).to_be_visible(timeout=LIVE)
    expect(page.locator(".conv-row", has_text="Ben")).to_be_visible(timeout=LIVE)
    jo_row.click()
    expect(page.locator("#thread-head")).to_contain_text("Jo Martin")
    mark_page(page)

    # The first read: nothing has spread yet.
    assert refresh_engagement(tenant) == 2
    page.wait_for_timeout(1000)
    expect(page.locator(".chip-spreading")).to_have_count(0)
    expect(page.locator("#spreading-pill")).to_have_count(0)
    screenshot(page, "spreading-before")

    # A crowd shares Jo's post on the Sandbox.
    crowd = agent_page(browser)
    crowd.goto(live.url + "/sandbox/")
    crowd.get_by_label("Handle").fill("crowd")
    crowd.get_by_role("button", name="Be this person").click()
    post = crowd.locator(f"#post-{complaint.pk}")
    post.get_by_role("button", name="Make it spread").click()
    expect(crowd.locator(f"#post-{complaint.pk} .sb-metrics")).to_have_text(
        "40 reposts · 120 likes"
    )
    screenshot(crowd, "spreading-sandbox")

    # The next scheduled read, two minutes on.
    with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=True):
        assert refresh_engagement(tenant) == 2

    flag = jo_row.locator(".chip-spreading")
    expect(flag).to_have_text("Spreading", timeout=LIVE)
    expect(page.locator("#spreading-pill")).to_contain_text(
        "Spreading · 160 reposts, likes and replies", timeout=LIVE
    )
    expect(
        page.locator(".conv-row", has_text="Ben").locator(".chip-spreading")
    ).to_have_count(0)
    assert still_same_page(page)
    screenshot(page, "spreading-flagged")
    with tenant_context(tenant):
        flagged = Conversation.objects.get(contact__display_name="Jo Martin")
    assert flagged.spreading_since is not None
    # Jo's angry post was in the urgent lane already (the policy's negative
    # rule); the move to it is the service tests' (tests/helpdesk/test_spreading).
    assert (flagged.engagement_total, flagged.sla_lane) == (160, "urgent")
