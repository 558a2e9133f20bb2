"""Settings in a real Chromium against a real server process: a brand's hours, hold
and signatures saved through the REST API (with a field error for a bad value), a
listening rule created and its query tried, a saved reply created; screenshots of
every settings page at 1280 px and at a 390 px phone width."""

import pytest
from playwright.sync_api import Browser, Page, expect

from helpdesk.models import SavedReply
from social.models import ListeningRule
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant
from tests.browser.conftest import agent_page, sign_in
from tests.browser.conftest import screenshot as save_screenshot
from tests.browser.live import LiveServer
from tests.factories import PASSWORD, add_member, make_brand, make_user, make_workspace

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = ("brands", "accounts", "listening", "saved-replies", "members")
ADMIN_SETTINGS = (*SETTINGS, "api-tokens", "webhooks")


@pytest.fixture
def workspace() -> Tenant:
    sam = make_user("sam@skyline.example", display_name="Sam Rivera")
    tenant = make_workspace("Skyline Air", owner=sam)
    make_brand(tenant, "Skyline Cargo")
    nina = make_user("nina@skyline.example", display_name="Nina Patel")
    add_member(tenant, nina, Membership.Role.AGENT)
    return tenant


def brand_row(tenant: Tenant, name: str) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get(name=name)


def test_brand_settings_through_the_page(
    browser: Browser, live: LiveServer, workspace: Tenant
) -> None:
    page = agent_page(browser)
    sign_in(page, live.url, "sam@skyline.example", PASSWORD)
    page.goto(f"{live.url}/t/skyline-air/settings/brands/")
    screenshot(page, "settings-brands")
    card = page.locator(".brand-cards li", has_text="Skyline Air")
    card.get_by_role("link", name="Edit settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Skyline Air")
    brand = brand_row(workspace, "Skyline Air")

    hold = page.get_by_label("Hold before sending (seconds)")
    hold.fill("500")
    page.get_by_role("button", name="Save changes").click()
    error = page.locator('.field-error[data-field="send_hold_seconds"]')
    expect(error).to_have_text("Ensure this value is less than or equal to 120.")
    expect(hold).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-alert")).to_have_text("Some fields need attention.")
    screenshot(page, "settings-brand-field-error")
    assert (
        brand_row(workspace, "Skyline Air").send_hold_seconds == brand.send_hold_seconds
    )

    hold.fill("45")
    monday = page.locator('.day-row[data-day="mon"]')
    monday.get_by_label("Monday opens at").fill("08:00")
    monday.get_by_label("Monday closes at").fill("18:00")
    saturday = page.locator('.day-row[data-day="sat"]')
    saturday.get_by_label("Saturday", exact=True).check()
    saturday.get_by_label("Saturday opens at").fill("10:00")
    saturday.get_by_label("Saturday closes at").fill("14:00")
    friday = page.locator('.day-row[data-day="fri"]')
    friday.get_by_role("button", name="Add hours").click()
    friday.get_by_label("Friday opens at").nth(1).fill("22:00")
    friday.get_by_label("Friday closes at").nth(1).fill("00:00")
    page.get_by_label("Sandbox").fill(" ^{initials}")
    expect(page.locator('.sig-row[data-platform="sandbox"] .sig-mark')).to_have_text(
        " ^SR"
    )
    page.get_by_label("Time zone").select_option("Europe/Lisbon")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#form-status")).to_have_text("Saved")
    expect(error).to_be_empty()
    expect(page.locator("#brand-status .status-sub")).to_contain_text("Europe/Lisbon")

    saved = brand_row(workspace, "Skyline Air")
    assert saved.send_hold_seconds == 45
    assert saved.timezone == "Europe/Lisbon"
    assert saved.signature_rules == {"sandbox": " ^{initials}"}
    assert saved.business_hours == {
        "mon": [["08:00", "18:00"]],
        "tue": [["09:00", "17:00"]],
        "wed": [["09:00", "17:00"]],
        "thu": [["09:00", "17:00"]],
        "fri": [["09:00", "17:00"], ["22:00", "24:00"]],
        "sat": [["10:00", "14:00"]],
        "sun": [],
    }
    page.reload()
    expect(page.get_by_label("Hold before sending (seconds)")).to_have_value("45")
    expect(friday.get_by_label("Friday closes at").nth(1)).to_have_value("00:00")
    screenshot(page, "settings-brand-saved")


def test_listening_rule_and_query_tester(
    browser: Browser, live: LiveServer, workspace: Tenant
) -> None:
    page = agent_page(browser)
    sign_in(page, live.url, "sam@skyline.example", PASSWORD)
    page.goto(f"{live.url}/t/skyline-air/settings/brands/")
    page.locator(".settings-nav").get_by_role("link", name="Listening rules").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Listening rules")

    editor = page.locator("#rule-form")
    editor.get_by_label("Brand").select_option(label="Skyline Air")
    editor.get_by_label("Name").fill("Untagged complaints")
    editor.get_by_label("Query", exact=True).fill('"skyline air" (late OR delay*) -job')
    editor.get_by_label("Sandbox").check()
    editor.get_by_role("button", name="Add rule").click()
    expect(editor.locator(".form-status")).to_have_text("Rule added")
    rule = page.locator(".rule", has_text="Untagged complaints")
    expect(rule.locator("code.query")).to_have_text(
        '"skyline air" (late OR delay*) -job'
    )
    expect(rule).to_contain_text("Sandbox")
    with tenant_context(workspace):
        rules = list(
            ListeningRule.objects.values_list(
                "brand__name", "name", "query", "platforms", "action", "enabled"
            )
        )
    assert rules == [
        (
            "Skyline Air",
            "Untagged complaints",
            '"skyline air" (late OR delay*) -job',
            ["sandbox"],
            "inbox",
            True,
        )
    ]

    rule.get_by_role("button", name="Test Untagged complaints").click()
    tester = page.locator("#test-form")
    expect(tester.get_by_label("Query")).to_have_value(
        '"skyline air" (late OR delay*) -job'
    )
    tester.get_by_label("Sample post").fill(
        "Three hours late on the tarmac with Skyline Air, again"
    )
    tester.get_by_role("button", name="Test", exact=True).click()
    result = page.locator("#test-result")
    expect(result.locator(".result-head")).to_contain_text("Matches")
    expect(result.locator(".chip")).to_have_text(["late", "skyline air"])
    screenshot(page, "settings-listening-tested")

    tester.get_by_label("Query").fill("skyline AND (air OR")
    tester.get_by_role("button", name="Test", exact=True).click()
    query_error = tester.locator("#t-err-query")
    expect(query_error).to_contain_text("(at character 19)")
    caret = query_error.locator(".caret")
    expect(caret).to_be_visible()
    assert caret.evaluate("node => node.textContent") == " " * 19 + "^"
    expect(result).to_be_hidden()
    screenshot(page, "settings-listening-syntax-error")

    # Editing goes through the API too, and a bad query is named on its field.
    rule.get_by_role("button", name="Edit Untagged complaints").click()
    expect(page.locator("#editor-title")).to_have_text("Edit “Untagged complaints”")
    expect(editor.get_by_label("Sandbox")).to_be_checked()
    editor.get_by_label("Query", exact=True).fill("NOT spam")
    editor.get_by_role("button", name="Save rule").click()
    expect(editor.locator('.field-error[data-field="query"]')).to_contain_text(
        "too broad"
    )
    with tenant_context(workspace):
        assert (
            ListeningRule.objects.get().query == '"skyline air" (late OR delay*) -job'
        )
    editor.get_by_role("button", name="Cancel").click()
    expect(page.locator("#editor-title")).to_have_text("Add a rule")

    page.once("dialog", lambda dialog: dialog.accept())
    rule.get_by_role("button", name="Delete Untagged complaints").click()
    expect(page.get_by_text("No rules for Skyline Air yet.")).to_be_visible()
    with tenant_context(workspace):
        assert ListeningRule.objects.count() == 0


def test_saved_reply_through_the_page(
    browser: Browser, live: LiveServer, workspace: Tenant
) -> None:
    page = agent_page(browser)
    sign_in(page, live.url, "sam@skyline.example", PASSWORD)
    page.goto(f"{live.url}/t/skyline-air/settings/saved-replies/")
    expect(page.get_by_text("No saved replies yet.")).to_be_visible()
    form = page.locator("#reply-form")
    form.get_by_role("button", name="Add saved reply").click()
    expect(form.locator('.field-error[data-field="title"]')).to_have_text(
        "This field may not be blank."
    )
    form.get_by_label("Title").fill("Delayed bag")
    form.get_by_label("Brand").select_option(label="Skyline Cargo")
    form.get_by_label("Reply").fill("Hi ")
    form.get_by_role("button", name="{first_name}").click()
    form.get_by_label("Reply").press_sequentially(
        ", sorry your bag is late. {agent_name} from {brand_name} {oops}"
    )
    preview = page.locator("#reply-preview")
    expect(preview).to_have_text(
        "Hi Maria, sorry your bag is late. Sam Rivera from Skyline Cargo {oops}"
    )
    expect(page.locator("#preview-warning")).to_have_text(
        "{oops} is not a placeholder and stays as typed."
    )
    form.get_by_role("button", name="Add saved reply").click()
    expect(form.locator(".form-status")).to_have_text("Reply added")
    expect(page.locator(".saved-reply", has_text="Delayed bag")).to_contain_text(
        "Hi {first_name}, sorry your bag is late."
    )
    with tenant_context(workspace):
        replies = list(SavedReply.objects.values_list("title", "body", "brand__name"))
    assert replies == [
        (
            "Delayed bag",
            "Hi {first_name}, sorry your bag is late. {agent_name} from {brand_name}"
            " {oops}",
            "Skyline Cargo",
        )
    ]
    screenshot(page, "settings-saved-reply-added")

    reply = page.locator(".saved-reply", has_text="Delayed bag")
    reply.get_by_role("button", name="Edit Delayed bag").click()
    expect(page.locator("#reply-editor-title")).to_have_text("Edit “Delayed bag”")
    cargo = brand_row(workspace, "Skyline Cargo")
    expect(form.get_by_label("Brand")).to_have_value(str(cargo.pk))
    form.get_by_label("Title").fill("Delayed baggage")
    form.get_by_label("Brand").select_option(label="All brands")
    form.get_by_role("button", name="Save reply").click()
    expect(form.locator(".form-status")).to_have_text("Reply saved")
    expect(page.locator("#reply-list h2")).to_have_text(["All brands"])
    expect(page.locator(".saved-reply .reply-title")).to_have_text(["Delayed baggage"])
    with tenant_context(workspace):
        saved: list[tuple[str, int | None]] = list(
            SavedReply.objects.values_list("title", "brand")
        )
        assert saved == [("Delayed baggage", None)]

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete Delayed baggage").click()
    expect(page.get_by_text("No saved replies yet.")).to_be_visible()
    with tenant_context(workspace):
        assert SavedReply.objects.count() == 0


@pytest.mark.parametrize("width", [1280, 390])
def test_every_settings_page_at_desktop_and_phone_width(
    browser: Browser, live: LiveServer, workspace: Tenant, width: int
) -> None:
    with tenant_context(workspace):
        brand = Brand.objects.get(name="Skyline Air")
        ListeningRule.objects.create(
            tenant=workspace,
            brand=brand,
            name="Untagged mentions",
            query='("skyline air" OR skylineair OR #skylineair) -job -hiring',
            platforms=["sandbox", "x"],
        )
        SavedReply.objects.create(
            tenant=workspace,
            brand=None,
            title="Thanks",
            body="Thanks {first_name}, we're on it. {agent_name}",
        )
    page = agent_page(browser, width=width)
    sign_in(page, live.url, "sam@skyline.example", PASSWORD)
    suffix = "" if width > 500 else "-phone"
    for name in ADMIN_SETTINGS:
        page.goto(f"{live.url}/t/skyline-air/settings/{name}/")
        expect(page.locator(".settings-nav a[aria-current=page]")).to_have_count(1)
        no_sideways_scroll(page)
        screenshot(page, f"settings-{name}{suffix}")
    page.goto(f"{live.url}/t/skyline-air/settings/brands/{brand.pk}/")
    no_sideways_scroll(page)
    screenshot(page, f"settings-brand{suffix}")
    # The workspace home lists the settings too.
    page.goto(f"{live.url}/t/skyline-air/")
    expect(page.locator(".settings-nav a")).to_have_count(8)
    if width < 500:  # the top bar's Settings is enough on a phone's home
        expect(page.locator(".settings-nav")).to_be_hidden()
    no_sideways_scroll(page)
    screenshot(page, f"settings-home{suffix}")

    nina = agent_page(browser, width=width)
    sign_in(nina, live.url, "nina@skyline.example", PASSWORD)
    nina.goto(f"{live.url}/t/skyline-air/settings/brands/{brand.pk}/")
    expect(nina.locator("#readonly-note")).to_be_visible()
    expect(nina.get_by_label("Hold before sending (seconds)")).to_be_disabled()
    expect(nina.get_by_role("button", name="Save changes")).to_have_count(0)
    screenshot(nina, f"settings-brand-readonly{suffix}")


def screenshot(page: Page, name: str) -> None:
    """The whole page as laid out, not as scrolled: a full-page capture keeps the
    viewport, so sticky bars would land mid-page; they are unstuck for the shot
    (through the CSSOM, which the CSP allows)."""
    unstick = (
        "(position) => { for (const el of document.querySelectorAll("
        "'.topbar, .settings-nav, .save-bar')) el.style.position = position; }"
    )
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate(unstick, "static")
    save_screenshot(page, name)
    page.evaluate(unstick, "")


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"
