"""`manage.py seed_demo` fills the demo inbox through the real services."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from helpdesk.models import CareFact, Conversation, Message, ReportRollup
from tenants.context import tenant_context
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_the_demo_inbox_is_populated_across_platforms_and_states() -> None:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())  # a second run adds nothing
    tenant = Tenant.objects.get(slug="acme-air")
    with tenant_context(tenant):
        everything = list(Conversation.objects.all())
        conversations = [c for c in everything if not _history(c)]
        history = [c for c in everything if _history(c)]
        facts = sorted(CareFact.objects.values_list("kind", flat=True))
        rollups = ReportRollup.objects.count()
        failed = Message.objects.filter(delivery_status="failed").count()
        moved = (
            Conversation.objects.filter(
                channel_state="private", messages__visibility="public"
            )
            .distinct()
            .count()
        )
    # 12 for the inbox, and 3 the advocates' demo opens (a fan, a critic, a defender).
    assert len(conversations) == 15
    # A seeded month of closed history feeds the reports page.
    assert len(history) == 193
    assert {c.status for c in history} == {"resolved"}
    assert facts.count("opened") == 208
    assert facts.count("no_reply") == 5
    # Answered history and inbox conversations, and the advocates' demo's fan and
    # defender, whom the team thanks (a first response each).
    assert facts.count("first_response") == 193
    assert rollups > 0
    assert {c.platform for c in conversations} == {
        "sandbox",
        "x",
        "instagram",
        "facebook",
        "mastodon",
        "bluesky",
    }
    assert {c.status for c in conversations} == {"open", "pending", "resolved"}
    assert {c.origin for c in conversations} >= {"mention", "listening"}
    assert failed == 1
    assert moved == 1
    text = out.getvalue()
    assert "owner: owner@acme-air.example / earshot-demo" in text
    assert "/t/acme-air/inbox/" in text
    assert "Sandbox network (be the customer): http://testserver/sandbox/" in text

    client = Client()
    assert client.login(email="agent@acme-air.example", password="earshot-demo")
    page = client.get("/t/acme-air/inbox/")
    assert page.status_code == 200
    assert page.content.decode().count('class="conv-row') == 12  # the open tab


def _history(conversation: Conversation) -> bool:
    ref = conversation.public_thread_ref or conversation.private_thread_ref
    return ref.startswith("demo-history-")
