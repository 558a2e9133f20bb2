"""Losing access while the inbox is open, in a real Chromium against the real stack.

The page must show "No access to this workspace" with a link to sign in again and
stop reconnecting, whether the server closes the open socket (the member was
removed) or refuses the reconnecting handshake (the session was signed out in
another tab, then the connection dropped). Websocket attempts are counted with
page.on("websocket").
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import override_settings
from playwright.sync_api import Browser, Page, WebSocket, expect

from tenants.context import tenant_context
from tenants.models import Tenant, User
from tenants.services import remove_member
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.factories import PASSWORD, membership_of

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_SECONDS = 4.0  # longer than the first three backoffs (0.5 s, 1 s, 2 s) together


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    """The removal's close signal goes through the stack's channel layer."""
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def open_inbox(
    browser: Browser, live: LiveServer, user: User
) -> tuple[Page, list[str]]:
    page = agent_page(browser)
    # Only the inbox's sockets count: the page signing in lands on has one of its
    # own for the spike banner (spikes/static/spikes/js/spike_banner.js).
    attempts: list[str] = []
    page.on(
        "websocket",
        lambda socket: (
            attempts.append(_path(socket)) if "/inbox/" in page.url else None
        ),
    )
    sign_in(page, live.url, user.email, PASSWORD)
    page.goto(live.url + "/t/acme-air/inbox/")
    expect(page.locator("#presence")).to_contain_text("online")
    return page, attempts


def _path(socket: WebSocket) -> str:
    return socket.url.split("/", 3)[3].split("?")[0]


def expect_no_access(page: Page) -> None:
    banner = page.locator("#access-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_text("No access to this workspace. Sign in again")
    link = banner.get_by_role("link", name="Sign in again")
    expect(link).to_have_attribute("href", "/accounts/login/?next=/t/acme-air/inbox/")
    expect(page.locator("#connection-banner")).to_be_hidden()


def test_a_removed_member_sees_no_access_and_the_page_stops_retrying(
    browser: Browser, live: LiveServer, owner: User, agent: User, tenant: Tenant
) -> None:
    page, attempts = open_inbox(browser, live, agent)
    expect(page.locator("#access-banner")).to_be_hidden()
    assert attempts == ["ws/t/acme-air/"]

    def remove() -> None:
        # Its own thread: the on-commit close signal uses async_to_sync, which
        # cannot run beside Playwright's event loop.
        try:
            with tenant_context(tenant):
                owner_member = membership_of(tenant, owner)
                remove_member(owner_member, target=membership_of(tenant, agent))
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(remove).result(timeout=30)

    expect_no_access(page)
    time.sleep(QUIET_SECONDS)
    # Coming back to the tab would reconnect a socket that is only lost.
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    page.evaluate("() => window.dispatchEvent(new Event('online'))")
    time.sleep(1.0)
    assert attempts == ["ws/t/acme-air/"]
    screenshot(page, "access-removed")


def test_a_refused_reconnect_after_signing_out_elsewhere_stops_the_retries(
    browser: Browser, live: LiveServer, agent: User, tenant: Tenant
) -> None:
    page, attempts = open_inbox(browser, live, agent)
    other_tab = page.context.new_page()
    other_tab.goto(live.url + "/t/acme-air/inbox/")
    other_tab.get_by_role("button", name="Log out").click()
    other_tab.wait_for_url(lambda url: "/t/acme-air/" not in url)
    other_tab.close()
    assert attempts == ["ws/t/acme-air/"]

    live.stop()
    expect(page.locator("#connection-banner")).to_be_visible()
    live.start()

    expect_no_access(page)
    refused_at = len(attempts)
    time.sleep(QUIET_SECONDS)
    assert len(attempts) == refused_at
    assert set(attempts) == {"ws/t/acme-air/"}
    screenshot(page, "access-signed-out")
