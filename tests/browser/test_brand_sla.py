"""A brand's response targets, holidays and queue settings in a real Chromium
against a real server: a bad target and an overlapping holiday shown beside their
fields with nothing saved, then saved targets, an added and a removed holiday, and
the brand's own targets dropped for the workspace's."""

from datetime import date

import pytest
from playwright.sync_api import Browser, expect

from tenants.context import tenant_context
from tenants.models import Brand, Holiday, SlaPolicy, Tenant
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import LiveServer
from tests.factories import PASSWORD, make_user, make_workspace

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def workspace() -> Tenant:
    sam = make_user("sam@skyline.example", display_name="Sam Rivera")
    return make_workspace("Skyline Air", owner=sam)


def brand_of(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get()


def policies(tenant: Tenant) -> list[tuple[object, ...]]:
    with tenant_context(tenant):
        return list(
            SlaPolicy.objects.values_list(
                "brand_id",
                "first_response_minutes",
                "resolution_minutes",
                "urgent_tags",
                "urgent_on_negative",
            )
        )


def holidays(tenant: Tenant) -> list[tuple[str, date, date]]:
    with tenant_context(tenant):
        return list(
            Holiday.objects.order_by("start_date").values_list(
                "name", "start_date", "end_date"
            )
        )


def test_targets_holidays_and_queue_settings_through_the_page(
    browser: Browser, live: LiveServer, workspace: Tenant
) -> None:
    brand = brand_of(workspace)
    page = agent_page(browser)
    sign_in(page, live.url, "sam@skyline.example", PASSWORD)
    page.goto(f"{live.url}/t/skyline-air/settings/brands/{brand.pk}/")
    expect(page.locator("#sla-source")).to_have_text(
        "This brand uses the default targets until you save its own."
    )

    # A target of zero: the field says why, nothing is saved.
    first = page.locator("#f-first_response_minutes")
    first.fill("0")
    page.get_by_role("button", name="Save targets").click()
    error = page.locator('#sla-form .field-error[data-field="first_response_minutes"]')
    expect(error).to_have_text("Ensure this value is greater than or equal to 1.")
    expect(first).to_have_attribute("aria-invalid", "true")
    screenshot(page, "settings-brand-sla-field-error")
    assert policies(workspace) == []

    first.fill("20")
    page.locator("#f-resolution_minutes").fill("1440")
    page.locator("#f-urgent_tags").fill("Refund, lost bag")
    page.locator("#f-urgent_on_negative").uncheck()
    page.get_by_role("button", name="Save targets").click()
    expect(page.locator("#sla-status")).to_have_text("Saved")
    expect(error).to_be_empty()
    expect(page.locator("#sla-source")).to_have_text("This brand has its own targets.")
    expect(page.locator("#f-urgent_tags")).to_have_value("refund, lost bag")
    assert policies(workspace) == [(brand.pk, 20, 1440, ["refund", "lost bag"], False)]

    # Holidays: a range, then one that overlaps it (refused beside the field).
    form = page.locator("#holiday-form")
    form.get_by_label("Name").fill("Christmas")
    form.get_by_label("First day").fill("2026-12-24")
    form.get_by_label("Last day").fill("2026-12-26")
    form.get_by_role("button", name="Add holiday").click()
    expect(page.locator("#holiday-list tbody tr")).to_have_count(1)
    expect(page.locator("#holiday-status")).to_have_text("Added")
    form = page.locator("#holiday-form")
    form.get_by_label("Name").fill("Boxing day")
    form.get_by_label("First day").fill("2026-12-26")
    form.get_by_role("button", name="Add holiday").click()
    expect(form.locator('.field-error[data-field="start_date"]')).to_have_text(
        "These dates overlap Christmas (2026-12-24 to 2026-12-26)."
    )
    screenshot(page, "settings-brand-holiday-overlap")
    form.get_by_label("First day").fill("2026-12-31")
    form.get_by_label("Name").fill("New year's eve")
    form.get_by_role("button", name="Add holiday").click()
    expect(page.locator("#holiday-list tbody tr")).to_have_count(2)
    assert holidays(workspace) == [
        ("Christmas", date(2026, 12, 24), date(2026, 12, 26)),
        ("New year's eve", date(2026, 12, 31), date(2026, 12, 31)),
    ]
    page.get_by_role("button", name="Remove Christmas").click()
    expect(page.locator("#holiday-list tbody tr")).to_have_count(1)
    assert holidays(workspace) == [
        ("New year's eve", date(2026, 12, 31), date(2026, 12, 31))
    ]

    # The four brand settings save with the rest of the brand form.
    window = page.get_by_label("Queue window (minutes)")
    window.fill("61")
    page.get_by_role("button", name="Save changes").click()
    expect(
        page.locator('.field-error[data-field="queue_window_minutes"]')
    ).to_have_text("Ensure this value is less than or equal to 60.")
    window.fill("10")
    page.locator("#f-pause_while_pending").uncheck()
    page.locator("#f-publish_badge").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#form-status")).to_have_text("Saved")
    with tenant_context(workspace):
        saved = Brand.objects.get()
    assert (
        saved.queue_window_minutes,
        saved.pause_while_pending,
        saved.publish_badge,
        saved.sla_digest,
    ) == (10, False, True, False)
    screenshot(page, "settings-brand-sla-saved")

    # Back to the workspace's targets.
    page.get_by_role("button", name="Use the workspace's targets").click()
    expect(page.locator("#sla-source")).to_have_text(
        "This brand uses the default targets until you save its own."
    )
    expect(first).to_have_value("60")
    assert policies(workspace) == []
