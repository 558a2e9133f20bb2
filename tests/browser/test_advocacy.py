"""Advocates and the competitor feed in a real Chromium: a suggested advocate is
confirmed on the page, and the competitor chart draws under the app's CSP
(screenshots: tests/browser/artifacts/advocacy-*.png)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from advocacy.models import AdvocateSuggestion, CompetitorMention
from advocacy.services import scan_for_advocates
from social.models import ListeningRule
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import LiveServer
from tests.factories import PASSWORD, make_user, make_workspace
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)

PRAISE = [
    "Thanks so much, the crew was amazing!",
    "Great flight today, love this airline",
    "Wonderful service again, thank you",
]


def watch(page: Page) -> list[str]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


@pytest.fixture
def world() -> tuple[Tenant, User]:
    owner = make_user("ada@rival.example", display_name="Ada")
    tenant = make_workspace("Blue Air", owner=owner)
    account = make_account(tenant)
    for text in PRAISE:
        receive(account, item(text=text, author="fan", handle="fan", followers=4200))
    with tenant_context(tenant):
        scan_for_advocates(tenant)
        brand = Brand.objects.get()
        rule = ListeningRule.objects.create(
            brand=brand,
            name="Sky Rival",
            query="skyrival",
            action="feed",
            competitor=True,
        )
        now = timezone.now()
        for n, (hours, mood) in enumerate(
            [(1, "negative"), (2, "negative"), (26, "positive"), (50, "neutral")]
        ):
            CompetitorMention.objects.create(
                rule=rule,
                brand=brand,
                platform="x",
                external_id=f"x{n}",
                author_handle=f"flyer{n}",
                text=f"skyrival post {n} ({mood})",
                sentiment=mood,
                posted_at=now - timedelta(hours=hours),
            )
    return tenant, owner


def test_confirming_an_advocate_and_the_competitor_chart(
    browser: Browser, live: LiveServer, world: tuple[Tenant, User]
) -> None:
    tenant, owner = world
    page = agent_page(browser)
    problems = watch(page)
    sign_in(page, live.url, owner.email, PASSWORD)

    page.goto(f"{live.url}/t/{tenant.slug}/reports/")
    page.get_by_role("link", name="Advocates").click()
    pending = page.locator("#pending .advocate-row")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("Fan")
    expect(pending).to_contain_text("4.2k followers")
    screenshot(page, "advocacy-suggested")
    pending.get_by_role("button", name="Confirm").click()
    expect(page.locator("#confirmed .advocate-row")).to_contain_text("★ Advocate")
    expect(page.locator("#pending .advocate-row")).to_have_count(0)
    with tenant_context(tenant):
        assert list(AdvocateSuggestion.objects.values_list("status", flat=True)) == [
            "confirmed"
        ]

    page.goto(f"{live.url}/t/{tenant.slug}/reports/competitors/")
    totals = page.locator("[data-totals] tbody tr")
    expect(totals).to_have_count(1)
    expect(totals).to_contain_text("Sky Rival")
    assert [cell.strip() for cell in totals.locator("td").all_inner_texts()[1:]] == [
        "4",
        "2",
        "1",
        "1",
    ]
    drawn = page.evaluate(
        "() => { const c = document.getElementById('chart-competitors');"
        " return c.width > 0 && !!window.Chart.getChart(c); }"
    )
    assert drawn is True
    screenshot(page, "advocacy-competitors")
    assert problems == []
