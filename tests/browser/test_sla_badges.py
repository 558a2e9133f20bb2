"""SLA badges in a real Chromium against the real stack: the page's clock turns a
due-soon badge into a breach on time, the sweep's event re-renders a row whose
clock changed on the server, and "No reply needed" marks the thread live."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Browser, expect

from helpdesk.models import Conversation
from helpdesk.services.breaches import sweep_sla_clocks
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.factories import PASSWORD
from tests.helpdesk.sla_support import make_clocked

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    """What this process records (as the beat's worker would) is pushed to the
    server's sockets through the stack's channel layer."""
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def test_badges_follow_the_clock_and_the_sweep(
    browser: Browser, live: LiveServer, owner: User, tenant: Tenant
) -> None:
    now = timezone.now()
    soon = make_clocked(
        tenant, name="Jo Martin", started=now - timedelta(minutes=59, seconds=40)
    )
    calm = make_clocked(tenant, name="Sam Calm", started=now, lane="urgent")
    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(f"{live.url}/t/acme-air/inbox/{soon.pk}/")
    row_badge = page.locator(f"#conv-{soon.pk} .sla-badge")
    head_badge = page.locator("#thread-head .sla-badge")
    expect(row_badge).to_have_attribute("data-sla-state", "due_soon")
    expect(row_badge).to_have_text("Due soon · 1 min")
    expect(page.locator(f"#conv-{calm.pk} .sla-badge")).to_have_text("UrgentDue in 1 h")
    screenshot(page, "sla-due-soon")

    # No event yet: the page's own clock turns both badges at the due time.
    expect(row_badge).to_have_attribute("data-sla-state", "breached", timeout=30_000)
    expect(row_badge).to_have_text("Breached just now")
    expect(head_badge).to_have_attribute("data-sla-state", "breached")

    # The server moves Sam's clock (the page cannot know); the sweep's event makes
    # the page re-fetch the row.
    with tenant_context(tenant):
        Conversation.objects.filter(pk=calm.pk).update(
            sla_due_at=now - timedelta(minutes=5),
            sla_due_soon_at=now - timedelta(minutes=17),
        )
        assert sorted(sweep_sla_clocks(tenant).breached) == sorted([soon.pk, calm.pk])
    calm_badge = page.locator(f"#conv-{calm.pk} .sla-badge")
    expect(calm_badge).to_have_attribute("data-sla-state", "breached", timeout=15_000)
    expect(calm_badge).to_contain_text("Breached")
    screenshot(page, "sla-breached")

    page.locator("#no-reply summary").click()
    page.get_by_label("Why does this need no answer?").select_option("thanks")
    screenshot(page, "sla-no-reply-form")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#no-reply-pill")).to_have_text("No reply needed · Thanks")
    expect(page.locator("#no-reply")).to_have_count(0)
    expect(head_badge).to_have_count(0)
    expect(row_badge).to_have_count(0)
    screenshot(page, "sla-no-reply-marked")
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=soon.pk).no_reply_reason == "thanks"
