"""Customer text that holds HTML, script, `javascript:` links, markdown and template
tricks is inert on every page that shows it, and shown exactly as written (issue 13,
hostile input).

The text arrives through the real ingest: posts and a private message on the
Sandbox network, its signed webhooks, the live server's receiver and the worker.
The inbox is open while they arrive, so the live path (websocket event, fetched
fragment inserted by frontend/static/frontend/js/) renders them first; a reply in
an open thread arrives live too. Then the thread, a note, the contact search, the
reports and the workspace admin (changelist, search results, change page) are
checked. Each page: no dialog opened, no payload ran (window.__pwned, the title),
no element came from the payload (event-handler attributes, `javascript:` links,
inline scripts, frames), and the text elements hold the text as written.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, Page, expect

from helpdesk.models import Contact, Conversation
from social.sandbox import network
from social.sandbox.models import Person
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.browser.conftest import agent_page, screenshot, sign_in
from tests.browser.live import CHANNEL_LAYERS, LiveServer
from tests.browser.test_inbox_journey import LIVE, mark_page, still_same_page
from tests.browser.test_inbox_live import connect_sandbox
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

NAME = '<b onmouseover="window.__pwned=9">Mallory</b> \u202eyrollaM'
POSTS = [
    '@acmeair <img src=x onerror="window.__pwned=1;alert(1)"> '
    '<script>window.__pwned=2;document.title="pwned"</script>',
    "@acmeair [x](javascript:window.__pwned=3) <javascript:alert(3)> "
    '<a href="javascript:window.__pwned=4">tap</a> '
    'https://example.com/"onmouseover="window.__pwned=5',
    "@acmeair <svg onload=alert(6)></svg><style>*{display:none!important}</style>"
    '<iframe srcdoc="<script>parent.__pwned=7</script>"></iframe> '
    "\u202eevil\u202c zero\u200bwidth \U0001f469\u200d\U0001f469\u200d\U0001f467 "
    '{{ 7|add:"7" }} {% now "Y" %} &amp; &lt;b&gt; url(javascript:alert(1))',
]
LIVE_REPLY = '@acmeair <img src=x onerror="alert(10)"> still <u>waiting</u>'
PRIVATE = "<img src=x onerror=alert(8)> **bold** `code` <b>private</b> \u200d"
NOTE = '<img src=x onerror="window.__pwned=11"> [note](javascript:alert(11))'

# Everything on the page that could have come from a payload and would act.
INERT = """() => {
  const found = [];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      const value = attr.value.trim().toLowerCase();
      if (attr.name.startsWith("on")) found.push(`${el.tagName} ${attr.name}`);
      if (["href", "src", "action", "formaction", "srcdoc"].includes(attr.name)
          && (value.startsWith("javascript:") || value.startsWith("vbscript:")
              || value.startsWith("data:text/html") || attr.name === "srcdoc")) {
        found.push(`${el.tagName} ${attr.name}=${attr.value}`);
      }
    }
  }
  for (const el of document.querySelectorAll("iframe, object, embed, svg script")) {
    found.push(el.tagName);
  }
  for (const el of document.querySelectorAll("script:not([src])")) {
    if (el.type !== "application/json") found.push("inline script");
  }
  for (const el of document.querySelectorAll("body img[src='x'], body style")) {
    found.push(el.outerHTML.slice(0, 80));
  }
  return {pwned: window.__pwned ?? null, title: document.title, found};
}"""


@pytest.fixture(autouse=True)
def events_reach_the_server(live: LiveServer) -> Iterator[None]:
    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


def watch_dialogs(page: Page) -> list[str]:
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return dialogs


def assert_inert(page: Page, dialogs: list[str], where: str) -> None:
    state = page.evaluate(INERT)
    assert dialogs == [], where
    assert state["pwned"] is None, where
    assert state["title"] != "pwned", where  # what the <script> payload would set
    assert state["found"] == [], where


def texts(page: Page, selector: str) -> list[str]:
    return [str(text) for text in page.locator(selector).all_text_contents()]


def test_hostile_text_is_inert_and_shown_as_written(
    browser: Browser, live: LiveServer, sandbox: None, owner: User, tenant: Tenant
) -> None:
    connect_sandbox(live, tenant, owner)
    mallory = Person.objects.create(handle="mallory", name=NAME, followers=10)
    brand_person = Person.objects.get(handle="acmeair")
    page = agent_page(browser)
    dialogs = watch_dialogs(page)
    sign_in(page, live.url, owner.email, PASSWORD)
    page.goto(live.url + "/t/acme-air/inbox/")
    mark_page(page)

    posts = [network.create_post(mallory, text)[0] for text in POSTS]
    network.send_message(mallory, brand_person, PRIVATE)

    rows = page.locator(".conv-row")
    expect(rows).to_have_count(len(POSTS) + 1, timeout=LIVE)
    assert still_same_page(page)
    assert sorted(texts(page, ".conv-preview")) == sorted([*POSTS, PRIVATE])
    assert set(texts(page, ".conv-name")) == {NAME}
    screenshot(page, "hostile-inbox-live")
    assert_inert(page, dialogs, "inbox, rows arrived live")

    page.reload()
    expect(rows).to_have_count(len(POSTS) + 1)
    assert sorted(texts(page, ".conv-preview")) == sorted([*POSTS, PRIVATE])
    assert_inert(page, dialogs, "inbox, rendered by the server")

    first = conversation_of(tenant, POSTS[0])
    page.locator(f"#conv-{first} .conv-link").click()
    expect(page.locator("#timeline .msg-body")).to_have_text([POSTS[0]])
    expect(page.locator("#contact-panel .contact-name")).to_have_text(NAME)
    mark_page(page)

    network.create_post(mallory, LIVE_REPLY, in_reply_to=posts[0])
    expect(page.locator("#timeline .msg-body")).to_have_text(
        [POSTS[0], LIVE_REPLY], timeout=LIVE
    )
    assert still_same_page(page)
    assert_inert(page, dialogs, "thread, reply arrived live")

    page.locator("#mode-note").click()
    page.locator("#note-text").fill(NOTE)
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#timeline .note-body")).to_have_text([NOTE], timeout=LIVE)
    screenshot(page, "hostile-thread")
    assert_inert(page, dialogs, "thread with a note")

    for text in [*POSTS[1:], PRIVATE]:
        page.goto(live.url + f"/t/acme-air/inbox/{conversation_of(tenant, text)}/")
        expect(page.locator("#timeline .msg-body")).to_have_text([text])
        assert page.locator("h2").first.text_content() == NAME
        assert_inert(page, dialogs, f"thread of {text[:30]!r}")
    screenshot(page, "hostile-thread-last")

    contact = contact_id(tenant)
    page.goto(live.url + f"/t/acme-air/contacts/{contact}/merge-candidates/?q=Mallory")
    assert_inert(page, dialogs, "contact search")

    page.goto(live.url + "/t/acme-air/reports/")
    expect(page.locator("h1")).to_be_visible()
    screenshot(page, "hostile-reports")
    assert_inert(page, dialogs, "reports")

    admin = live.url + "/t/acme-air/admin/helpdesk/"
    page.goto(admin + "conversation/?q=Mallory")
    expect(page.locator("#result_list tbody tr")).to_have_count(len(POSTS) + 1)
    screenshot(page, "hostile-admin-search")
    assert_inert(page, dialogs, "admin conversation search")
    page.goto(admin + "contact/")
    expect(page.locator("#result_list tbody tr", has_text="Mallory")).to_have_count(1)
    assert_inert(page, dialogs, "admin contacts")
    page.goto(admin + f"contact/{contact}/change/")
    expect(page.locator("#id_display_name")).to_have_value(NAME)
    screenshot(page, "hostile-admin-contact")
    assert_inert(page, dialogs, "admin contact page")
    page.goto(admin + f"conversation/{first}/change/")
    assert_inert(page, dialogs, "admin conversation page")


def conversation_of(tenant: Tenant, text: str) -> int:
    with tenant_context(tenant):
        return Conversation.objects.get(messages__text=text).pk


def contact_id(tenant: Tenant) -> int:
    with tenant_context(tenant):
        return Contact.objects.get(display_name=NAME).pk
