"""The inbox page, its filters and counts, the row fragment and the selector."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from helpdesk.models import Conversation
from helpdesk.selectors import inbox_conversations, inbox_counts
from helpdesk.services.assignment import assign_conversation
from helpdesk.services.notes import set_tags
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.factories import make_brand, membership_of
from tests.frontend.conftest import customer_post
from tests.helpdesk.conftest import make_account

pytestmark = pytest.mark.django_db


def row_ids(html: str) -> list[int]:
    return [
        int(pk)
        for pk in re.findall(r'<li class="conv-row[^"]*"\s+id="conv-(\d+)"', html)
    ]


def test_the_inbox_lists_open_conversations_most_urgent_first(
    owner: User, account: SocialAccount
) -> None:
    # A Wednesday afternoon, inside the brand's default hours (Mon-Fri 09-17 UTC).
    now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        later = customer_post(account, text="@acmeair hello", created_at=now)
        overdue = customer_post(
            account, author="c2", handle="sam", created_at=now - timedelta(hours=2)
        )
        response = login(owner).get("/t/acme-air/inbox/")
    assert response.status_code == 200
    html = response.content.decode()
    assert row_ids(html) == [overdue.pk, later.pk]
    assert 'data-seq="4"' in html
    # Its 10-minute urgent-lane target (negative sentiment) ran out at 13:10.
    assert "Breached 1 h 50 min ago" in html
    assert '<span class="tab-count">2</span>' in html
    assert 'class="conv-row awaiting' in html


def test_the_workspace_home_links_to_the_inbox(owner: User, tenant: Tenant) -> None:
    html = login(owner).get("/t/acme-air/").content.decode()
    assert 'href="/t/acme-air/inbox/">Open the inbox</a>' in html
    assert 'href="/t/acme-air/inbox/"' in html.split("</nav>")[0]


def test_each_filter_narrows_the_list(
    owner: User, agent: User, tenant: Tenant, account: SocialAccount
) -> None:
    other_brand = make_brand(tenant, "Acme Cargo")
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=account.pk).update(brand=other_brand)
    x_account = make_account(tenant, platform="x", handle="acmehelp")
    mention = customer_post(account, text="@acmeair lovely flight, thanks!")
    listening = receive_listening(account)
    on_x = customer_post(x_account, author="x1", handle="xena", platform="x")
    dm = customer_post(account, author="d1", handle="dee", visibility="private")
    with tenant_context(tenant):
        assign_conversation(
            on_x, membership=membership_of(tenant, owner), assignee=agent
        )
        set_tags(dm, membership=membership_of(tenant, owner), names=["Refund"])
    client = login(owner)
    expectations = {
        "": {mention.pk, listening.pk, on_x.pk, dm.pk},
        f"brand={other_brand.pk}": {mention.pk, listening.pk, dm.pk},
        f"account={x_account.pk}": {on_x.pk},
        "platform=x": {on_x.pk},
        "origin=listening": {listening.pk},
        "origin=direct_message": {dm.pk},
        f"assignee={agent.pk}": {on_x.pk},
        "assignee=none": {mention.pk, listening.pk, dm.pk},
        "assignee=me": set(),
        "sentiment=positive": {mention.pk},
        "tag=refund": {dm.pk},
        "status=resolved": set(),
        "status=all": {mention.pk, listening.pk, on_x.pk, dm.pk},
        # Values that are not choices of this workspace are ignored, never a 500.
        "brand=banana&platform=myspace&assignee=x": {
            mention.pk,
            listening.pk,
            on_x.pk,
            dm.pk,
        },
    }
    for query, expected in expectations.items():
        response = client.get(f"/t/acme-air/inbox/?{query}")
        assert response.status_code == 200, query
        assert set(row_ids(response.content.decode())) == expected, query


def receive_listening(account: SocialAccount) -> Conversation:
    from tests.helpdesk.conftest import item, receive

    return receive(
        account,
        item(author="l1", handle="lee", mentions=False),
        origin="listening",
    ).conversation


def test_counts_follow_the_filters(
    owner: User, tenant: Tenant, account: SocialAccount
) -> None:
    first = customer_post(account)
    customer_post(account, author="c2", handle="sam", platform="sandbox")
    with tenant_context(tenant):
        Conversation.objects.filter(pk=first.pk).update(status="resolved")
        counts = inbox_counts(membership_of(tenant, owner))
        x_counts = inbox_counts(membership_of(tenant, owner), platform="x")
    assert counts == {
        "all": 2,
        "unanswered": 1,
        "open": 1,
        "pending": 0,
        "snoozed": 0,
        "resolved": 1,
    }
    assert x_counts["all"] == 0


def test_the_selector_reads_a_filtered_page_in_one_query(
    owner: User, tenant: Tenant, account: SocialAccount
) -> None:
    for n in range(3):
        conversation = customer_post(account, author=f"c{n}", handle=f"h{n}")
        with tenant_context(tenant):
            set_tags(
                conversation, membership=membership_of(tenant, owner), names=["vip"]
            )
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        with CaptureQueriesContext(connection) as captured:
            rows = list(
                inbox_conversations(membership, tag="vip", platform="sandbox")[:25]
            )
            names = [
                (r.brand.name, r.contact.display_name, r.social_account, r.assignee)
                for r in rows
            ]
    tenant_queries = [
        q for q in captured.captured_queries if "helpdesk_conversation" in q["sql"]
    ]
    assert len(names) == 3
    assert len(tenant_queries) == 1


def test_the_row_fragment_is_the_pages_row_or_204_when_filtered_out(
    owner: User, account: SocialAccount
) -> None:
    # The row's SLA label counts minutes to the deadline: both renders see one
    # frozen moment, or a minute boundary between them changes the label.
    now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        conversation = customer_post(account, created_at=now)
        client = login(owner)
        page = client.get("/t/acme-air/inbox/").content.decode()
        fragment = client.get(f"/t/acme-air/inbox/rows/{conversation.pk}/")
    assert fragment.status_code == 200
    row = fragment.content.decode().strip()
    assert row.startswith(
        f'<li class="conv-row awaiting"\n    id="conv-{conversation.pk}"'
    )
    assert row in page
    filtered = client.get(f"/t/acme-air/inbox/rows/{conversation.pk}/?platform=x")
    assert (filtered.status_code, filtered.content) == (204, b"")


def test_the_conversation_page_shows_thread_composer_and_customer(
    owner: User, account: SocialAccount
) -> None:
    conversation = customer_post(account, text="@acmeair lost my bag", followers=2400)
    html = login(owner).get(f"/t/acme-air/inbox/{conversation.pk}/").content.decode()
    assert 'class="inbox has-conversation"' in html
    assert f'data-conversation-id="{conversation.pk}"' in html
    assert "@acmeair lost my bag" in html
    assert 'id="reply-form"' in html
    assert 'id="contact-panel"' in html
    assert "2.4k followers" in html
    assert f'id="conv-{conversation.pk}" data-id' not in html or "selected" in html


def test_the_page_runs_under_csp_without_inline_script(
    owner: User, account: SocialAccount
) -> None:
    conversation = customer_post(account)
    response = login(owner).get(f"/t/acme-air/inbox/{conversation.pk}/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all(
        'src="/static/frontend/js/' in attrs or 'type="application/json"' in attrs
        for attrs in scripts
    ), scripts
    assert " onclick=" not in html
    assert " style=" not in html
    assert 'src="/static/frontend/js/inbox.js"' in html


def test_a_conversation_of_another_workspace_is_404(
    owner: User,
    outsider: User,
    other_tenant: Tenant,
    account: SocialAccount,
) -> None:
    conversation = customer_post(account)
    globex = make_account(other_tenant)
    theirs = customer_post(globex, author="g1", handle="gina")
    client = login(owner)
    assert client.get(f"/t/acme-air/inbox/{theirs.pk}/").status_code == 404
    assert client.get(f"/t/acme-air/inbox/rows/{theirs.pk}/").status_code == 404
    charlie = login(outsider)
    assert charlie.get(f"/t/acme-air/inbox/{conversation.pk}/").status_code == 404
    assert charlie.get("/t/acme-air/inbox/").status_code == 404
