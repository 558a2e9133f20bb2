"""Real Chromium (Debian's /usr/bin/chromium) via Playwright against live_server."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.live import LiveServer, live_stack

# Playwright's sync API keeps an event loop in the test thread; the ORM calls the
# tests make around it are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


# Module scope: Playwright's sync API keeps an event loop running in the test thread
# while it is started, which would break async_to_sync in the tests that follow.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (see .ci/run)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def live(django_db_setup: None) -> Iterator[LiveServer]:
    """A real server process and a real worker for this module's journeys."""
    with live_stack() as server:
        yield server


def agent_page(browser: Browser, *, width: int = 1280) -> Page:
    """A fresh browser context (its own cookies: another person) and its page."""
    height = 844 if width < 500 else 800
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def sandbox_apps(url: str) -> dict[str, Any]:
    """SOCIAL_APPS with the Sandbox at the live server's address."""
    sandbox = {**settings.SOCIAL_APPS["sandbox"], "base_url": f"{url}/sandbox"}
    return {**settings.SOCIAL_APPS, "sandbox": sandbox}


@pytest.fixture
def sandbox(live: LiveServer) -> Iterator[None]:
    """Earshot registered as an app on the Sandbox at the live server's address."""
    from social.sandbox.setup import register_earshot_app

    with override_settings(SITE_URL=live.url, SOCIAL_APPS=sandbox_apps(live.url)):
        register_earshot_app()
        yield
