"""The demo's advocates and competitor feed (called by `manage.py seed_demo`).

Seeds a competitor rule ("Sky Rival") and two weeks of public posts about the
competitor through the real ingest decision (`social.ingest.record_for_account`,
so they land in the competitor feed and never in the inbox), a fan with three
positive messages and a customer who defends the brand in another customer's
complaint thread, then runs the advocate scan: both are *suggested*, waiting for
a person to confirm them.

Praise is answered: the team thanked the fan and the defender within minutes, so
their conversations wait on nobody and never sit at the top of the queue as
breached complaints (the demo's first impression). The complaint itself is left
unanswered, as the complaint it is.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from advocacy.services import scan_for_advocates
from helpdesk.demo_history import answer
from helpdesk.services.inbound import record_inbound_message
from social.connectors.base import Author, InboundItem
from social.ingest import record_for_account
from social.models import ListeningRule, SocialAccount
from tenants.models import Brand, Membership

RIVAL_QUERY = '"sky rival" OR skyrival OR #skyrival'
# (days ago, hour, text): a mix of moods, busier in the last few days.
RIVAL_POSTS = [
    (13, 9, "Flew Sky Rival to Lisbon, on time and friendly crew. Nice."),
    (12, 18, "Sky Rival lost my bag in Madrid. Terrible, nobody answers."),
    (10, 8, "Booked skyrival for the summer, the app is so easy"),
    (9, 14, "#skyrival delayed 3 hours again, awful"),
    (7, 11, "Sky Rival's new lounge at T2 is lovely"),
    (6, 20, "skyrival cancelled my flight, worst experience ever"),
    (5, 7, "Is Sky Rival any good for long haul?"),
    (4, 16, "Sky Rival refund took 2 months. Unacceptable."),
    (3, 10, "Great upgrade on Sky Rival today, love it"),
    (2, 9, "Sky Rival strike tomorrow? Everyone rebooking"),
    (2, 13, "skyrival customer service was rude and useless"),
    (1, 8, "Sky Rival boarding was chaos, stuck for an hour"),
    (1, 15, "Thanks Sky Rival for the smooth trip home!"),
    (0, 9, "#skyrival seats are so cramped, never again"),
]
# The seeded customers (seed_demo's), so their identities and contacts are reused.
PEOPLE = {
    "ben_flies": ("Ben Okafor", 12),
    "yuki": ("Yuki Tanaka", 830),
    "tom_h": ("Tom Hughes", 40),
}
FAN_PRAISE = [
    "@acmeair the crew on AA31 were amazing, thank you!",
    "@acmeair great flight again today, love flying with you",
    "@acmeair wonderful help at the desk this morning, thanks so much",
]
# The team's thanks (R6: no two alike), a few minutes after the first praise and
# after the last (R3: two public replies in a thread).
THANKS = {
    0: "Thank you Ben! We'll pass that on to the AA31 crew.",
    2: "So glad the desk could help this morning, Ben. Thanks for telling us!",
}
DEFENCE_THANKS = "Thank you Yuki, that means a lot to the crew."
ANSWERED_AFTER = timedelta(minutes=12)


def seed_advocacy_demo(
    membership: Membership, brand: Brand, accounts: dict[str, SocialAccount]
) -> None:
    """Seed the competitor rule and feed, and two advocate suggestions. Call
    inside the demo tenant's context, once (the demo seeds an empty inbox)."""
    account = accounts.get("sandbox") or accounts.get("x")
    if account is None:
        return
    account = SocialAccount.objects.select_related("tenant", "brand").get(pk=account.pk)
    ListeningRule.objects.get_or_create(
        tenant=membership.tenant,
        brand=brand,
        name="Sky Rival (competitor)",
        defaults={"query": RIVAL_QUERY, "action": "feed", "competitor": True},
    )
    now = timezone.now()
    for number, (days, hour, text) in enumerate(RIVAL_POSTS):
        at = (now - timedelta(days=days)).replace(hour=hour, minute=7 * number % 60)
        record_for_account(
            account,
            _item(account, f"rival-{number}", f"flyer{number}", text, min(at, now)),
        )
    for number, text in enumerate(FAN_PRAISE):
        at = now - timedelta(hours=50 - 23 * number)
        item = _item(
            account,
            f"fan-{number}",
            "ben_flies",
            text,
            at,
            thread="fan-0",
            mentions=True,
        )
        praise = record_inbound_message(account, item, away_reply=False)
        if praise.created and number in THANKS:
            answer(praise.conversation, membership, THANKS[number], at + ANSWERED_AFTER)
    complaint = _item(
        account,
        "critic-0",
        "tom_h",
        "@acmeair AA12 delayed again, this is terrible and nobody tells us anything",
        now - timedelta(hours=30),
        mentions=True,
    )
    record_inbound_message(account, complaint, away_reply=False)
    defence = _item(
        account,
        "defence-0",
        "yuki",
        "Honestly the Acme crew were wonderful to me last week, they'll sort it out",
        now - timedelta(hours=29),
        thread="critic-0",
        in_reply_to="critic-0",
    )
    defended = record_inbound_message(account, defence, away_reply=False)
    if defended.created:
        answer(
            defended.conversation,
            membership,
            DEFENCE_THANKS,
            now - timedelta(hours=29) + ANSWERED_AFTER,
        )
    scan_for_advocates(membership.tenant, full=True)


def _item(
    account: SocialAccount,
    external_id: str,
    handle: str,
    text: str,
    at: datetime,
    *,
    thread: str = "",
    in_reply_to: str = "",
    mentions: bool = False,
) -> InboundItem:
    name, followers = PEOPLE.get(handle, (handle.title(), 300))
    return InboundItem(
        platform=account.platform,
        external_id=f"demo-{external_id}",
        author=Author(
            external_id=f"{account.platform}-{handle}",
            handle=handle,
            display_name=name,
            followers=followers,
        ),
        text=text,
        created_at=at,
        visibility="public",
        kind="mention" if mentions else "post",
        thread_ref=f"demo-{thread}" if thread else f"demo-{external_id}",
        in_reply_to=f"demo-{in_reply_to}" if in_reply_to else "",
        mentions_account=mentions,
    )
