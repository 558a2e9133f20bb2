"""SLA states in the inbox: the badge of list rows and of the thread header at exact
times, what the sweep's event makes the page re-fetch, and "No reply needed"."""

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.test import Client

from frontend.presenters import sla_span
from helpdesk.models import Conversation, Event
from helpdesk.services.breaches import sweep_sla_clocks
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.helpdesk.sla_support import T0, fresh, make_clocked

pytestmark = pytest.mark.django_db

DUE = "2026-12-07T10:00:00+00:00"
SOON = "2026-12-07T09:48:00+00:00"
JS = Path(__file__).resolve().parents[2] / "frontend/static/frontend/js"


def badge(state: str, text: str, *, lane: str = "", soon: bool = True) -> str:
    urgent = ' <span class="sla-lane">Urgent</span>'.strip() if lane else ""
    return (
        f'<span class="sla-badge sla-{state}{" sla-urgent" if lane else ""}" '
        f'data-sla-state="{state}" data-sla-kind="first" data-sla-due="{DUE}"'
        + (f' data-sla-soon="{SOON}"' if soon else "")
        + f' title="First response target{", urgent lane" if lane else ""}">'
        f'{urgent}<span class="sla-text">{text}</span></span>'
    )


def row_html(client: Client, conversation: Conversation, at: datetime) -> str:
    with time_machine.travel(at, tick=False):
        response = client.get(f"/t/acme-air/inbox/rows/{conversation.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def header_html(client: Client, conversation: Conversation, at: datetime) -> str:
    with time_machine.travel(at, tick=False):
        response = client.get(f"/t/acme-air/conversations/{conversation.pk}/header/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_row_shows_the_clock_at_exact_times(owner: User, tenant: Tenant) -> None:
    conversation = make_clocked(tenant)
    client = login(owner)
    cases = [
        (T0 + timedelta(minutes=47, seconds=30), "on_track", "Due in 13 min"),
        (T0 + timedelta(minutes=48), "due_soon", "Due soon · 12 min"),
        (T0 + timedelta(minutes=56), "due_soon", "Due soon · 4 min"),
        (T0 + timedelta(minutes=60, seconds=59), "breached", "Breached just now"),
        (T0 + timedelta(minutes=68, seconds=10), "breached", "Breached 8 min ago"),
    ]
    for at, state, text in cases:
        html = row_html(client, conversation, at)
        assert badge(state, text) in html, (state, text)


def test_the_thread_header_shows_the_urgent_lane(owner: User, tenant: Tenant) -> None:
    conversation = make_clocked(tenant, lane="urgent")
    html = header_html(login(owner), conversation, T0 + timedelta(minutes=12))
    assert badge("on_track", "Due in 48 min", lane="urgent") in html


def test_a_paused_clock_shows_the_time_it_has_left(owner: User, tenant: Tenant) -> None:
    conversation = make_clocked(
        tenant,
        status="pending",
        sla_run_started_at=None,
        sla_due_at=None,
        sla_used_seconds=20 * 60,
    )
    html = header_html(login(owner), conversation, T0 + timedelta(hours=5))
    assert (
        '<span class="sla-badge sla-paused" data-sla-state="paused" '
        'data-sla-kind="first" title="First response target: waiting on the '
        'customer"><span class="sla-text">Paused · 40 min left</span></span>'
    ) in html


def test_a_conversation_without_a_clock_shows_its_activity_time(
    owner: User, tenant: Tenant
) -> None:
    conversation = make_clocked(tenant, started=None)
    html = row_html(login(owner), conversation, T0)
    assert "sla-badge" not in html
    assert 'class="conv-row"' in html
    assert "data-ago=" in html


def test_after_the_sweep_the_refetched_fragments_say_breached(
    owner: User, tenant: Tenant
) -> None:
    conversation = make_clocked(tenant)
    client = login(owner)
    at = T0 + timedelta(hours=1, minutes=3)
    with tenant_context(tenant):
        assert sweep_sla_clocks(tenant, now=at).breached == [conversation.pk]
        event = Event.objects.get(type="conversation.updated")
    # The page re-fetches the row on every conversation.updated, and the header
    # when a field it shows changed: the sweep's field is one of them.
    assert event.payload["changed"] == {"sla_state": "breached", "sla_breached_at": DUE}
    script = (JS / "conversation.js").read_text()
    fields = re.search(r"const HEADER_FIELDS = \[(.*?)\];", script, re.S)
    assert fields is not None
    for name in ("sla_state", "sla_breached_at", "no_reply_reason"):
        assert f'"{name}"' in fields.group(1)
    assert badge("breached", "Breached 3 min ago") in header_html(
        client, conversation, at
    )
    assert badge("breached", "Breached 3 min ago") in row_html(client, conversation, at)


def test_the_page_clock_uses_the_server_wording() -> None:
    script = (JS / "sla.js").read_text()
    for wording in ("Due in ", "Due soon · ", "Breached just now", " ago"):
        assert wording in script
    assert [sla_span(s, up=True) for s in (30, 60, 61, 3600, 3900, 172800)] == [
        "1 min",
        "1 min",
        "2 min",
        "1 h",
        "1 h 5 min",
        "2 d",
    ]
    assert sla_span(119, up=False) == "1 min"


# --- "No reply needed" --------------------------------------------------------------

CONTROL = '<details class="no-reply" id="no-reply">'


def test_agents_see_no_reply_needed_while_the_first_answer_is_awaited(
    agent: User, viewer: User, tenant: Tenant
) -> None:
    conversation = make_clocked(tenant)
    html = header_html(login(agent), conversation, T0)
    assert CONTROL in html
    assert (
        '<select id="no-reply-reason" name="reason" required>'
        '<option value="spam">Spam</option><option value="chatter">Chatter</option>'
        '<option value="thanks">Thanks</option>'
        '<option value="duplicate">Duplicate</option></select>'
    ) in re.sub(r">\s+<", "><", html)
    assert CONTROL not in header_html(login(viewer), conversation, T0)


def test_no_reply_needed_is_gone_once_answered_or_resolved(
    agent: User, tenant: Tenant
) -> None:
    answered = make_clocked(tenant, first_response_at=T0)
    resolved = make_clocked(tenant, status="resolved")
    client = login(agent)
    assert CONTROL not in header_html(client, answered, T0)
    assert CONTROL not in header_html(client, resolved, T0)


def test_marking_no_reply_needed_through_the_api_updates_the_header(
    agent: User, tenant: Tenant
) -> None:
    conversation = make_clocked(tenant)
    client = login(agent)
    response = client.post(
        f"/api/v1/t/acme-air/conversations/{conversation.pk}/no-reply/",
        {"reason": "thanks"},
        content_type="application/json",
    )
    assert response.status_code == 200
    with tenant_context(tenant):
        changed = Event.objects.get(type="conversation.updated").payload["changed"]
    assert changed["no_reply_reason"] == "thanks"
    html = header_html(client, conversation, T0)
    assert CONTROL not in html
    assert "No reply needed · Thanks</span>" in html
    assert "sla-badge" not in html
    assert fresh(conversation).no_reply_reason == "thanks"


def test_an_outsider_cannot_read_the_badge_or_mark(
    outsider: User, other_tenant: Tenant, tenant: Tenant
) -> None:
    conversation = make_clocked(tenant)
    client = login(outsider)
    assert (
        client.get(f"/t/acme-air/conversations/{conversation.pk}/header/").status_code
        == 404
    )
    assert client.get(f"/t/globex/inbox/rows/{conversation.pk}/").status_code == 404
    response = client.post(
        f"/api/v1/t/globex/conversations/{conversation.pk}/no-reply/",
        {"reason": "spam"},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert fresh(conversation).no_reply_reason == ""
