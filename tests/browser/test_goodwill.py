"""Goodwill in the composer: one click sends a private reply with a code, and the
pool's low warning shows once it drops below its mark."""

from collections.abc import Iterator

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, expect

from goodwill.models import GoodwillCode
from goodwill.services import create_goodwill_pool, import_goodwill_codes
from helpdesk.models import Message
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.browser.test_inbox_journey import LIVE, mark_page, still_same_page
from tests.factories import PASSWORD, membership_of
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def test_one_click_attaches_a_code_and_the_pool_warns_when_low(
    browser: Browser, live: LiveServer, owner: User, agent: User, tenant: Tenant
) -> None:
    account = make_account(tenant)
    with tenant_context(tenant):
        Brand.objects.update(send_hold_seconds=120)
        pool = create_goodwill_pool(
            membership_of(tenant, owner),
            brand=Brand.objects.get(),
            name="Lounge pass",
            description="One free lounge visit; for long delays.",
            low_water_mark=5,
        )
        import_goodwill_codes(
            membership_of(tenant, owner),
            pool,
            text="\n".join(f"LOUNGE-{n}" for n in range(1, 6)),
        )
    conversation = receive(
        account,
        item(
            text="Stuck 5 hours at the gate with two kids. Unbelievable.",
            visibility="private",
            handle="jo",
        ),
    ).conversation

    other = receive(
        account,
        item(
            text="Missed my connection in Madrid, any help?",
            visibility="private",
            author="cust-2",
            handle="sam",
        ),
    ).conversation
    # Another agent's composer, open on another conversation of the brand.
    colleague = agent_page(browser)
    sign_in(colleague, live.url, owner.email, PASSWORD)
    colleague.goto(f"{live.url}/t/acme-air/inbox/{other.pk}/")
    expect(
        colleague.get_by_role(
            "button", name="Send privately with a code: Lounge pass (5 left)"
        )
    ).to_be_visible()
    mark_page(colleague)

    page = agent_page(browser)
    sign_in(page, live.url, agent.email, PASSWORD)
    page.goto(f"{live.url}/t/acme-air/inbox/{conversation.pk}/")
    button = page.get_by_role(
        "button", name="Send privately with a code: Lounge pass (5 left)"
    )
    expect(button).to_be_visible()
    expect(page.locator(".goodwill-low")).to_have_count(0)
    page.locator("#reply-text").fill(
        "So sorry about the wait, Jo. The lounge is on us."
    )
    screenshot(page, "goodwill-composer")
    button.click()

    expect(page.locator(".goodwill-sent")).to_have_text(
        "Code LOUNGE-1 attached to your private reply."
    )
    expect(page.locator(".goodwill-low")).to_have_text(
        "“Lounge pass” is running low: 4 codes left (warning below 5)."
    )
    expect(
        page.get_by_role(
            "button", name="Send privately with a code: Lounge pass (4 left)"
        )
    ).to_be_visible()
    expect(page.locator("#reply-text")).to_have_value("")
    held = page.locator("#timeline .msg-out").last
    expect(held).to_contain_text("Lounge pass: LOUNGE-1", timeout=LIVE)
    screenshot(page, "goodwill-sent-low")
    # The colleague's composer follows without a reload: the count and the warning.
    expect(
        colleague.get_by_role(
            "button", name="Send privately with a code: Lounge pass (4 left)"
        )
    ).to_be_visible(timeout=LIVE)
    expect(colleague.locator(".goodwill-low")).to_have_text(
        "“Lounge pass” is running low: 4 codes left (warning below 5)."
    )
    assert still_same_page(colleague)
    screenshot(colleague, "goodwill-count-live")

    with tenant_context(tenant):
        message = Message.objects.get(direction="out")
        code = GoodwillCode.objects.get(code="LOUNGE-1")
    assert message.visibility == "private"
    assert message.text == (
        "So sorry about the wait, Jo. The lounge is on us.\n\nLounge pass: LOUNGE-1"
    )
    assert code.message_id == message.pk


def test_a_bad_import_lists_its_lines_and_the_report_shows_the_bands(
    browser: Browser, live: LiveServer, owner: User, tenant: Tenant
) -> None:
    with tenant_context(tenant):
        pool = create_goodwill_pool(
            membership_of(tenant, owner),
            brand=Brand.objects.get(),
            name="10% off next flight",
            description="A discount on the next booking.",
            low_water_mark=2,
        )
        import_goodwill_codes(membership_of(tenant, owner), pool, text="TEN-0001")
    page = agent_page(browser)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(f"{live.url}/t/acme-air/settings/goodwill/")
    expect(page.locator(".goodwill-low")).to_have_text(
        "“10% off next flight” is running low: 1 code left (warning below 2)."
    )
    page.get_by_label("Import codes").fill("TEN-0002\nTEN-0001\nbad code\nTEN-0002")
    page.get_by_role("button", name="Import").click()
    errors = page.locator(".import-errors li")
    expect(errors).to_have_count(3)
    expect(errors.nth(0)).to_have_text("Line 2: TEN-0001: already in this pool")
    expect(errors.nth(2)).to_have_text("Line 4: TEN-0002: duplicate of line 1")
    screenshot(page, "goodwill-import-errors")
    with tenant_context(tenant):
        assert GoodwillCode.objects.count() == 1

    page.goto(f"{live.url}/t/acme-air/reports/")
    expect(page.locator("#goodwill-by-band tbody tr")).to_have_count(3)
    page.locator("#goodwill-report").scroll_into_view_if_needed()
    screenshot(page, "goodwill-report")
