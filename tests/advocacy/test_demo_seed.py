"""The demo's advocacy seed (advocacy.demo, run by seed_demo): a competitor rule
whose traffic lands in the competitor feed only, two suggested advocates, and the
pages that show them answering 200."""

import pytest
from django.db.models import F

from advocacy.demo import DEFENCE_THANKS, RIVAL_POSTS, THANKS, seed_advocacy_demo
from advocacy.models import AdvocateSuggestion, CompetitorMention
from helpdesk.models import Conversation, Message
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.conftest import login
from tests.factories import membership_of
from tests.helpdesk.conftest import make_account

pytestmark = pytest.mark.django_db


def test_the_demo_seeds_a_competitor_feed_and_suggested_advocates(
    tenant: Tenant, owner: User
) -> None:
    account = make_account(tenant)
    with tenant_context(tenant):
        seed_advocacy_demo(
            membership_of(tenant, owner), Brand.objects.get(), {"sandbox": account}
        )
        seed_advocacy_demo(
            membership_of(tenant, owner), Brand.objects.get(), {"sandbox": account}
        )
        mentions = CompetitorMention.objects.count()
        conversations = sorted(
            Conversation.objects.values_list("contact__display_name", flat=True)
        )
        advocates = sorted(
            AdvocateSuggestion.objects.values_list(
                "contact__display_name", "status", "positive_count", "defence_count"
            )
        )

    assert mentions == len(RIVAL_POSTS)
    assert conversations == ["Ben Okafor", "Tom Hughes", "Yuki Tanaka"]
    assert advocates == [
        ("Ben Okafor", "pending", 3, 0),
        ("Yuki Tanaka", "pending", 1, 1),
    ]
    client = login(owner)
    for page in ("advocates", "competitors"):
        response = client.get(f"/t/{tenant.slug}/reports/{page}/")
        assert response.status_code == 200
    assert (
        "Sky Rival"
        in client.get(f"/t/{tenant.slug}/reports/competitors/").content.decode()
    )


def test_the_demo_answers_the_praise_and_leaves_the_complaint_waiting(
    tenant: Tenant, owner: User
) -> None:
    account = make_account(tenant)
    with tenant_context(tenant):
        for _ in range(2):
            seed_advocacy_demo(
                membership_of(tenant, owner), Brand.objects.get(), {"sandbox": account}
            )
        rows = {
            name: (clock is not None, answered is not None)
            for name, clock, answered in Conversation.objects.values_list(
                "contact__display_name", "sla_due_at", "first_response_at"
            )
        }
        replies = sorted(
            Message.objects.filter(direction="out").values_list(
                "conversation__contact__display_name", "text", "delivery_status"
            )
        )
        queue_order = list(
            Conversation.objects.filter(status="open")
            .order_by(F("sla_due_at").asc(nulls_last=True), "pk")
            .values_list("contact__display_name", flat=True)
        )

    # (clock running, answered): the praise waits on nobody, so it can never be
    # breached; the complaint's clock runs.
    assert rows == {
        "Ben Okafor": (False, True),
        "Yuki Tanaka": (False, True),
        "Tom Hughes": (True, False),
    }
    # Thanked once each, even when the seed runs again.
    assert replies == [
        ("Ben Okafor", THANKS[2], "sent"),
        ("Ben Okafor", THANKS[0], "sent"),
        ("Yuki Tanaka", DEFENCE_THANKS, "sent"),
    ]
    # All three stay open (the demo's inbox keeps its rows); the complaint first.
    assert queue_order == ["Tom Hughes", "Ben Okafor", "Yuki Tanaka"]
