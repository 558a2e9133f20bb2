"""The demo's advocacy seed (advocacy.demo, run by seed_demo): a competitor rule
whose traffic lands in the competitor feed only, two suggested advocates, and the
pages that show them answering 200."""

import pytest

from advocacy.demo import RIVAL_POSTS, seed_advocacy_demo
from advocacy.models import AdvocateSuggestion, CompetitorMention
from helpdesk.models import Conversation
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
