"""The reports page in a real Chromium against a real server process: the headline
figures from constructed care facts, a filter that redraws them without a reload,
the comparison with the previous period, the CSV exports, the empty states, and a
screenshot of every chart (tests/browser/artifacts/reports-*.png)."""

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from helpdesk.models import Conversation, SimulationRun
from helpdesk.services.exports import CONVERSATION_COLUMNS
from helpdesk.services.rollups import rebuild_rollups
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.browser.conftest import ARTIFACTS, agent_page, screenshot, sign_in
from tests.browser.live import LiveServer
from tests.factories import PASSWORD, add_member, make_brand, make_user, make_workspace
from tests.helpdesk.report_support import make_conversation, make_fact, make_message

pytestmark = pytest.mark.django_db(transaction=True)


def conversation(
    tenant: Tenant,
    brand: Brand,
    at: datetime,
    *,
    platform: str,
    origin: str = "mention",
    sentiment: str = "neutral",
    band: str = "small",
) -> Conversation:
    """A conversation whose customer wrote once, at `at`, and its opened fact
    (off hours outside 09:00-17:00 UTC, the brand's default hours on weekdays)."""
    conv = make_conversation(
        tenant,
        brand=brand,
        platform=platform,
        origin=origin,
        sentiment=sentiment,
        follower_band=band,
        created_at=at,
    )
    make_message(conv, at, apply=False)
    make_fact(conv, "opened", at, apply=False, off_hours=not 9 <= at.hour < 17)
    return conv


def answer(
    conv: Conversation,
    agent: User,
    seconds: int,
    *,
    private: bool = False,
    target: int = 3600,
) -> None:
    """The agent's first response (a public reply or a move to private) `seconds`
    after the customer wrote; a breach fact too when it missed `target`."""
    started = conv.first_customer_message_at
    assert started is not None
    at = started + timedelta(seconds=seconds)
    kind = "private_invite" if private else "reply"
    make_message(conv, at, kind=kind, agent_id=agent.pk, apply=False)
    make_fact(
        conv,
        "first_response",
        started,
        apply=False,
        at=at,
        agent_id=agent.pk,
        visibility="private" if private else "public",
        raw_seconds=seconds,
        business_seconds=seconds,
        target_seconds=target,
        breached=seconds > target,
    )
    if seconds > target:
        make_fact(conv, "breach", started, apply=False, at=at, agent_id=agent.pk)


@pytest.fixture
def skyline() -> dict[str, Any]:
    """Skyline Air (brands Skyline Air and Skyline Cargo), two agents, a viewer, and
    six conversations: five in the last 30 days, one in the 30 days before."""
    sam = make_user("sam@skyline.example", display_name="Sam Rivera")
    tenant = make_workspace("Skyline Air", owner=sam)
    cargo = make_brand(tenant, "Skyline Cargo")
    nina = make_user("nina@skyline.example", display_name="Nina Patel")
    add_member(tenant, nina, Membership.Role.AGENT)
    vic = make_user("vic@skyline.example", display_name="Vic Lane")
    add_member(tenant, vic, Membership.Role.VIEWER)
    with tenant_context(tenant):
        air = Brand.objects.get(name="Skyline Air")
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    day3, day2, day1 = (today - timedelta(days=n) for n in (3, 2, 1))

    a = conversation(tenant, air, day3 + timedelta(hours=10), platform="x")
    answer(a, nina, 600)
    b = conversation(
        tenant,
        air,
        day3 + timedelta(hours=11),
        platform="x",
        sentiment="negative",
        band="medium",
    )
    answer(b, nina, 1200)
    c = conversation(
        tenant,
        air,
        day2 + timedelta(hours=14),
        platform="mastodon",
        origin="direct_message",
        sentiment="positive",
        band="large",
    )
    answer(c, sam, 300, private=True)
    conversation(tenant, air, day2 + timedelta(hours=22), platform="mastodon")
    e = conversation(tenant, cargo, day1 + timedelta(hours=9), platform="x")
    answer(e, nina, 4200)
    earlier = conversation(
        tenant, air, today - timedelta(days=40) + timedelta(hours=10), platform="x"
    )
    answer(earlier, nina, 1800)
    # The facts were written without touching the rollups: rebuild them, as
    # `manage.py rebuild_rollups` does.
    rebuild_rollups(tenant)
    return {"tenant": tenant, "air": air, "cargo": cargo}


def add_simulation(tenant: Tenant, brand: Brand) -> None:
    figures = {
        "earshot": (1.0, 420, 2640, 1500, 0, 1.04),
        "fifo": (0.96, 900, 5400, 3000, 31, 1.18),
        "loudest": (0.81, 300, 9000, 4200, 77, 3.9),
    }
    names = (
        "response_rate",
        "first_response_p50",
        "first_response_p90",
        "next_response_p90",
        "breaches",
        "fairness_ratio",
    )
    with tenant_context(tenant):
        SimulationRun.objects.create(
            tenant=tenant,
            brand=brand,
            parameters={"volume": 400, "agents": 4, "seed": 11, "policy": "all"},
            results={p: dict(zip(names, v, strict=True)) for p, v in figures.items()},
        )


def watch(page: Page) -> list[str]:
    """Collect console errors (a CSP refusal is one) and uncaught exceptions."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    # Also every CSP refusal the page sees (Chart.js must draw under the app's CSP).
    page.add_init_script(
        "window.cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.cspViolations.push(e.violatedDirective));"
    )
    return problems


def kpi(page: Page, metric: str) -> str:
    return page.locator(f'.kpi[data-metric="{metric}"] .kpi-value').inner_text()


PANELS = (
    ("kpis", ".kpi-section"),
    ("volume", "#panel-volume"),
    ("first-response", "#panel-first-response"),
    ("fairness", "#panel-fairness"),
    ("off-hours", "#panel-offhours"),
    ("heatmap", "#panel-heatmap"),
    ("agents", "#panel-agents"),
    ("simulation", "#panel-simulation"),
)


def screenshot_all(page: Page, view: str) -> None:
    """The whole page and each panel: artifacts/reports-<view>[-<panel>].png."""
    screenshot(page, f"reports-{view}")
    # The sticky top bar would cover the top of a panel scrolled into view.
    page.evaluate("document.querySelector('.topbar').style.position = 'static'")
    for name, selector in PANELS:
        page.locator(selector).screenshot(
            path=str(ARTIFACTS / f"reports-{view}-{name}.png")
        )


def download(page: Page, link: str) -> tuple[str, list[str], list[list[str]]]:
    """Click an export link; the file's name, header row and data rows."""
    with page.expect_download() as info:
        page.locator(link).click()
    text = info.value.path().read_text(encoding="utf-8")
    header, *rows = csv.reader(io.StringIO(text))
    return info.value.suggested_filename, header, rows


def test_the_reports_page(
    browser: Browser, live: LiveServer, skyline: dict[str, Any]
) -> None:
    tenant, air = skyline["tenant"], skyline["air"]
    add_simulation(tenant, air)
    page = agent_page(browser)
    problems = watch(page)
    sign_in(page, live.url, "vic@skyline.example", PASSWORD)
    page.goto(f"{live.url}/t/skyline-air/reports/")

    # All brands, the last 30 days: 4 of 5 conversations answered; the 30 days
    # before had 1 of 1, so the rate fell 20 points (worse).
    expect(page.locator('.kpi[data-metric="response_rate"] .kpi-value')).to_have_text(
        "80%"
    )
    rate = page.locator('.kpi[data-metric="response_rate"]')
    expect(rate.locator(".kpi-change")).to_have_text(
        "▼20 ptsDown 20 pts from 100%: worse."
    )
    expect(rate).to_have_attribute("data-verdict", "bad")
    # First responses of 5, 10, 20 and 70 minutes: the rollups' histograms read
    # the p50 and the p90 at ranks 1.5 and 2.7 of 0..3, rounded down.
    assert kpi(page, "first_response_p50") == "10 min"
    assert kpi(page, "first_response_p90") == "20 min"
    assert kpi(page, "breach_rate") == "25%"
    assert kpi(page, "next_response_p50") == "—"
    expect(page.locator("#kpi-foot")).to_contain_text(
        '5 conversations, 5 needed an answer (0 marked "no reply needed"), 4 answered'
    )
    fairness = page.locator("#fairness-ratio")
    expect(fairness).to_have_class("fairness-ratio unfair")
    # p90 by band: 10 min (under 100), 20 min (100-10k), 5 min (over 10k); the
    # histograms are within 1%, so 20 / 5 reads 3.98.
    expect(fairness.locator(".ratio-value")).to_have_text("3.98\N{MULTIPLICATION SIGN}")
    agents = page.locator("#panel-agents tbody tr")
    expect(agents).to_have_count(2)
    expect(agents.nth(0).locator("th, td")).to_have_text(
        [
            "Nina Patel",
            "3",
            "20 min",
            "3",
            "0",
            "0",
        ]
    )
    expect(agents.nth(1).locator("th, td")).to_have_text(
        [
            "Sam Rivera",
            "1",
            "5 min",
            "0",
            "1",
            "0",
        ]
    )
    expect(page.locator("#panel-simulation tbody tr")).to_have_count(3)
    expect(
        page.locator("#panel-simulation tbody tr").nth(0).locator("th, td")
    ).to_have_text(
        [
            "Earshot's order",
            "100%",
            "7 min",
            "44 min",
            "25 min",
            "0",
            "1.04\N{MULTIPLICATION SIGN}",
        ]
    )
    expect(page.locator("#sim-caption")).to_contain_text(
        "(400 conversations, 4 agents, seed 11): first-response time by queue policy."
    )
    screenshot_all(page, "all-brands")

    # Volume split by sentiment instead of platform: the chart's table follows.
    volume = page.locator("#panel-volume")
    volume.get_by_role("radio", name="Sentiment").check()
    volume.get_by_text("Show as table").click()
    expect(volume.locator("thead th")).to_have_text(
        ["Day", "Negative", "Neutral", "Positive", "Total"]
    )
    volume.screenshot(path=str(ARTIFACTS / "reports-volume-by-sentiment.png"))
    volume.get_by_role("radio", name="Platform").check()

    # One brand, without a reload: 3 of its 4 answered, nothing breached; the
    # filters are in the URL and a fresh page at that URL shows the same view.
    page.evaluate("window.stayedOnPage = true")
    page.get_by_label("Brand", exact=True).select_option(label="Skyline Air")
    expect(page.locator('.kpi[data-metric="response_rate"] .kpi-value')).to_have_text(
        "75%"
    )
    assert kpi(page, "breach_rate") == "0%"
    assert page.evaluate("window.stayedOnPage") is True
    assert f"brand={air.pk}" in page.url
    expect(agents.nth(0).locator("th, td")).to_have_text(
        ["Nina Patel", "2", "10 min", "2", "0", "0"]
    )
    expect(page.locator(".heatmap td.staffed")).to_have_count(40)
    expect(page.locator("#heatmap-hint")).to_be_hidden()
    screenshot_all(page, "one-brand")

    again = agent_page(browser)
    sign_in(again, live.url, "vic@skyline.example", PASSWORD)
    again.goto(page.url)
    expect(again.get_by_label("Brand", exact=True)).to_have_value(str(air.pk))
    expect(again.locator('.kpi[data-metric="response_rate"] .kpi-value')).to_have_text(
        "75%"
    )
    # A phone shows the same view in one column, nothing wider than the screen.
    again.set_viewport_size({"width": 390, "height": 844})
    expect(again.locator(".heatmap td.staffed")).to_have_count(40)
    # Chart.js redraws its canvases from a ResizeObserver, a frame or two after
    # the resize; until then a canvas keeps its desktop width.
    again.wait_for_function("document.documentElement.scrollWidth === 390")
    assert again.evaluate("document.documentElement.scrollWidth") == 390
    screenshot(again, "reports-phone")
    for name, selector in PANELS[:3]:
        again.locator(selector).screenshot(
            path=str(ARTIFACTS / f"reports-phone-{name}.png")
        )
    again.context.close()

    # Back to all brands with the browser's Back button, still without a reload.
    page.go_back()
    expect(page.get_by_label("Brand", exact=True)).to_have_value("")
    expect(page.locator('.kpi[data-metric="response_rate"] .kpi-value')).to_have_text(
        "80%"
    )
    assert page.evaluate("window.stayedOnPage") is True
    page.go_forward()
    expect(page.locator('.kpi[data-metric="response_rate"] .kpi-value')).to_have_text(
        "75%"
    )

    # Without the comparison the headline shows no change and no earlier period.
    page.get_by_label("Compare with the previous period").uncheck()
    end = timezone.localdate()
    start = end - timedelta(days=29)
    expect(page.locator("#report-period")).to_have_text(
        f"{start.day} {start:%b %Y} to {end.day} {end:%b %Y}"
    )
    expect(rate.locator(".kpi-change")).to_have_text("")
    assert "compare=0" in page.url
    page.get_by_label("Compare with the previous period").check()
    expect(rate.locator(".kpi-change")).to_have_text(
        "▼25 ptsDown 25 pts from 100%: worse."
    )

    # The exports carry the filters.
    name, header, rows = download(page, "#export-conversations")
    assert name.startswith("skyline-air-conversations-")
    assert header == list(CONVERSATION_COLUMNS)
    assert len(rows) == 4
    name, header, rows = download(page, "#export-aggregates")
    assert name.startswith("skyline-air-aggregates-")
    assert header == [
        "section",
        "key",
        "label",
        "metric",
        "value",
        "previous",
        "change",
    ]

    # Empty states tell the truth.
    page.locator('#report-filters [name="platform"]').select_option(label="Reddit")
    expect(page.locator("#panel-volume [data-empty]")).to_be_visible()
    expect(page.locator("#panel-volume [data-empty]")).to_have_text(
        "No conversations in this period."
    )
    expect(page.locator("#kpi-foot")).to_have_text("No conversations in this period.")
    assert kpi(page, "response_rate") == "—"
    expect(rate.locator(".kpi-change")).to_have_text("")
    expect(page.locator("#panel-agents [data-empty]")).to_be_visible()
    screenshot(page, "reports-empty")

    assert problems == [], problems
    assert page.evaluate("window.cspViolations") == []

    # A bad period is a field error beside the filter (the 400 is the only
    # console error), and the figures drawn before stay as they were.
    page.get_by_label("To", exact=True).fill("2020-01-01")
    page.get_by_label("To", exact=True).dispatch_event("change")
    expect(page.locator('.field-error[data-field="end"]')).to_have_text(
        "The end is before the start."
    )
    expect(page.get_by_label("To", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.locator("#report-alert")).to_have_text(
        "The report could not be drawn. To: The end is before the start."
    )
    assert [p for p in problems if "400 (Bad Request)" not in p] == [], problems
