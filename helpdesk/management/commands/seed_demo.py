"""`manage.py seed_demo`: the demo workspace "Acme Air", its logins, and an inbox
with a dozen realistic conversations across platforms and states.

Customer messages go through the real inbound service and replies through
post_reply and the delivery service, so counters, SLA clocks, queue order and
events are what the live system would have produced; only the clock is set back.
Running it again changes nothing once the inbox has conversations.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import time_machine
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from advocacy.demo import seed_advocacy_demo
from goodwill.demo import seed_goodwill_pools
from helpdesk.demo_history import seed_history
from helpdesk.demo_spreading import seed_spreading_demo
from helpdesk.models import Contact, Conversation, Message, SavedReply
from helpdesk.services.assignment import assign_conversation
from helpdesk.services.contacts import upsert_identity
from helpdesk.services.delivery import record_delivery, record_failure
from helpdesk.services.inbound import record_inbound_message
from helpdesk.services.lifecycle import mark_pending, resolve_conversation
from helpdesk.services.notes import add_note, set_tags
from helpdesk.services.replies import move_to_private, post_reply
from incidents.demo import seed_incident_demo
from social.connectors.base import (
    Author,
    ConnectorError,
    DeliveryResult,
    InboundItem,
    TokenSet,
)
from social.models import SocialAccount
from social.services import connect_account
from spikes.demo import seed_spike_baseline
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tenants.services import create_workspace

DEMO_EMAIL = "owner@acme-air.example"
DEMO_PASSWORD = "earshot-demo"  # noqa: S105 - printed on the console for the demo
DEMO_AGENT_EMAIL = "agent@acme-air.example"
DEMO_AGENT2_EMAIL = "nina@acme-air.example"

# Other platforms the brand is connected to in the demo. Their credentials are
# placeholders: replies there fail visibly (with the platform's reason) and can be
# retried, which is what an agent would see with a revoked token.
DEMO_ACCOUNTS = [
    ("x", "AcmeAirHelp", "Acme Air Help", "x-acmeairhelp", ""),
    ("instagram", "acmeair", "Acme Air", "ig-acmeair", ""),
    ("facebook", "acmeair", "Acme Air", "fb-acmeair", ""),
    ("mastodon", "acmeair", "Acme Air", "md-acmeair", "https://mastodon.social"),
    ("bluesky", "acmeair.bsky.social", "Acme Air", "bs-acmeair", ""),
]
# The month of answered history behind the reports page (helpdesk/demo_history.py).
HISTORY_PLATFORMS = ("sandbox", "x", "mastodon", "bluesky")


@dataclass(frozen=True)
class Customer:
    handle: str
    name: str
    followers: int


JO = Customer("jo_travels", "Jo Martin", 180)
SAMIRA = Customer("samira_k", "Samira K.", 2400)
AISHA = Customer("travelqueen", "Aisha (Travel Queen)", 152_000)
LUCAS = Customer("lucas.dubois", "Lucas Dubois", 95)
MARIA = Customer("maria_g", "María García", 610)
BEN = Customer("ben_flies", "Ben Okafor", 12)
TOM = Customer("tom_h", "Tom Hughes", 40)
YUKI = Customer("yuki", "Yuki Tanaka", 830)


class Command(BaseCommand):
    help = "Create the demo tenant Acme Air with logins and a populated inbox."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"]
        owner = _user(DEMO_EMAIL, password, "Olivia (Acme Air)", operator=True)
        tenant = Tenant.objects.filter(slug="acme-air").first()
        if tenant is None:
            tenant = create_workspace(owner=owner, name="Acme Air").tenant
        agent = _user(DEMO_AGENT_EMAIL, password, "Andy Brooks")
        nina = _user(DEMO_AGENT2_EMAIL, password, "Nina Patel")
        with tenant_context(tenant):
            # Nina answers in French and Spanish too: auto-assign prefers her there.
            for user, spoken in ((agent, ["en"]), (nina, ["en", "fr", "es"])):
                Membership.objects.get_or_create(
                    tenant=tenant,
                    user=user,
                    defaults={"role": Membership.Role.AGENT, "languages": spoken},
                )
            membership = Membership.objects.select_related("user").get(user=owner)
            membership.tenant = tenant
            brand = Brand.objects.order_by("id")[0]
            Brand.objects.filter(pk=brand.pk).update(
                signature_rules={
                    "sandbox": " ^{initials}",
                    "x": " ^{initials}",
                    "default": " \N{EN DASH} {first_name}",
                }
            )
            brand.refresh_from_db()
            sandbox = _connect_sandbox(membership, brand)
            seed_goodwill_pools(membership, brand)
            if not Conversation.objects.exists():
                accounts = _connect_others(membership, brand)
                if sandbox is not None:
                    accounts["sandbox"] = sandbox
                _saved_replies(tenant, brand)
                self.stdout.write(
                    "Writing 30 days of history for the reports (about 20 s)..."
                )
                history = seed_history(
                    [accounts[p] for p in HISTORY_PLATFORMS if p in accounts],
                    [_member(tenant, user) for user in (owner, agent, nina)],
                )
                seeded = _seed_inbox(tenant, accounts, owner, agent, nina)
                seed_advocacy_demo(membership, brand, accounts)
                seed_spike_baseline(tenant, brand, now=timezone.now())
                seed_incident_demo(membership)
                seed_spreading_demo(tenant)
                self.stdout.write(
                    f"Seeded {seeded - history} conversations in the inbox and "
                    f"{history} closed ones from the last 30 days (for the reports)."
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo workspace {tenant.name} at {settings.SITE_URL}/t/{tenant.slug}/"
                f"inbox/\n"
                f"  owner: {DEMO_EMAIL} / {password} (also operator at /admin/)\n"
                f"  agent: {DEMO_AGENT_EMAIL} / {password}\n"
                f"  agent: {DEMO_AGENT2_EMAIL} / {password}\n"
                + (
                    f"  Sandbox network (be the customer): {settings.SITE_URL}/sandbox/"
                    if settings.SANDBOX_ENABLED
                    else ""
                )
            )
        )


def _member(tenant: Tenant, user: User) -> Membership:
    membership = Membership.objects.select_related("user").get(user=user)
    membership.tenant = tenant
    return membership


def _user(email: str, password: str, name: str, *, operator: bool = False) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(
            email,
            password,
            display_name=name,
            is_staff=operator,
            is_superuser=operator,
        )
        from allauth.account.models import EmailAddress

        EmailAddress.objects.get_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
    return user


def _connect_sandbox(membership: Membership, brand: Brand) -> SocialAccount | None:
    if not settings.SANDBOX_ENABLED:
        return None
    from social.models import ListeningRule
    from social.sandbox.setup import connect_demo_account

    account = connect_demo_account(membership, brand, "acmeair")
    ListeningRule.objects.get_or_create(
        tenant=membership.tenant,
        brand=brand,
        name="Untagged mentions of Acme Air",
        defaults={"query": '("acme air" OR acmeair OR #acmeair) -hiring'},
    )
    return account


def _connect_others(membership: Membership, brand: Brand) -> dict[str, SocialAccount]:
    accounts = {}
    for platform, handle, name, external_id, base_url in DEMO_ACCOUNTS:
        tokens = TokenSet(
            access_token=f"demo-{platform}-token",
            account_external_id=external_id,
            handle=handle,
            display_name=name,
        )
        accounts[platform] = connect_account(
            membership, brand=brand, platform=platform, tokens=tokens, base_url=base_url
        )
    return accounts


SAVED_REPLIES = [
    (
        "Delayed flight",
        "Hi {first_name}, I'm really sorry about the delay. Could you send us your "
        "booking reference in a private message so I can check your connection?",
    ),
    (
        "Lost baggage",
        "Hi {first_name}, that's stressful, sorry. Please DM us your bag tag number "
        "and I'll trace it right away. {agent_name}",
    ),
    (
        "Thanks for the kind words",
        "Thank you {first_name}! I'll pass this on to the crew. Have a great trip.",
    ),
]


def _saved_replies(tenant: Tenant, brand: Brand) -> None:
    for title, body in SAVED_REPLIES:
        SavedReply.objects.get_or_create(
            tenant=tenant, brand=brand, title=title, defaults={"body": body}
        )


class _Inbox:
    """Helpers to write history through the services, set back in time."""

    def __init__(self, tenant: Tenant, accounts: dict[str, SocialAccount]) -> None:
        self.tenant = tenant
        self.accounts = accounts
        self.now = timezone.now()
        self.serial = 0

    def membership(self, user: User) -> Membership:
        membership = Membership.objects.select_related("user").get(user=user)
        membership.tenant = self.tenant
        return membership

    def post(
        self,
        platform: str,
        who: Customer,
        text: str,
        minutes_ago: float,
        *,
        private: bool = False,
        thread: str = "",
        mentions: bool = True,
        origin: str | None = None,
    ) -> Conversation:
        self.serial += 1
        external = f"demo-{platform}-{self.serial}"
        account = self.accounts[platform]
        item = InboundItem(
            platform=platform,
            external_id=external,
            author=Author(
                external_id=f"{platform}-{who.handle}",
                handle=who.handle,
                display_name=who.name,
                followers=who.followers,
                profile_url="",
            ),
            text=text,
            created_at=self.now - timedelta(minutes=minutes_ago),
            visibility="private" if private else "public",
            kind="direct_message" if private else "mention",
            thread_ref=thread or external,
            mentions_account=mentions and not private,
        )
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account.pk
        )
        # Seeded history is answered by agents already: no away reply (R8)
        # stamped "now" after their replies.
        return record_inbound_message(
            account, item, origin=origin, away_reply=False
        ).conversation

    def reply(
        self,
        conversation: Conversation,
        user: User,
        text: str,
        minutes_ago: float,
        *,
        visibility: str | None = None,
        failure: str = "",
    ) -> Message:
        """A reply as post_reply queues it, then sent (or failed) as delivery records
        it, with its times set back."""
        conversation = Conversation.objects.get(pk=conversation.pk)
        # Queued at its own time, so the response facts measure what a customer saw.
        with time_machine.travel(self.now - timedelta(minutes=minutes_ago), tick=False):
            message = post_reply(
                conversation,
                membership=self.membership(user),
                text=text,
                visibility=visibility,
                confirm=("near_duplicate", "stale_view"),
            ).message
        return self._deliver(message, minutes_ago, failure)

    def _deliver(self, message: Message, minutes_ago: float, failure: str) -> Message:
        at = self.now - timedelta(minutes=minutes_ago)
        Message.objects.filter(pk=message.pk).update(delivery_status="sending")
        if failure:
            record_failure(
                message.pk, ConnectorError(failure, permanent=True), final=True
            )
        else:
            record_delivery(
                message.pk,
                DeliveryResult(external_id=f"demo-out-{message.pk}", sent_at=at),
            )
        Message.objects.filter(pk=message.pk).update(
            created_at=at, send_after=at, sent_at=None if failure else at
        )
        Conversation.objects.filter(
            pk=message.conversation_id, first_response_at__gt=at
        ).update(first_response_at=at)
        Conversation.objects.filter(pk=message.conversation_id).update(
            last_activity_at=at
        )
        return message

    def move_private(
        self, conversation: Conversation, user: User, text: str, minutes_ago: float
    ) -> None:
        conversation = Conversation.objects.get(pk=conversation.pk)
        with time_machine.travel(self.now - timedelta(minutes=minutes_ago), tick=False):
            queued = move_to_private(
                conversation, membership=self.membership(user), public_text=text
            )
        for message in queued:
            self._deliver(message, minutes_ago, "")


@transaction.atomic
def _seed_inbox(
    tenant: Tenant,
    accounts: dict[str, SocialAccount],
    owner: User,
    agent: User,
    nina: User,
) -> int:
    inbox = _Inbox(tenant, accounts)
    sandbox = "sandbox" if "sandbox" in accounts else "x"

    vip = inbox.post(
        "x",
        AISHA,
        "@AcmeAirHelp stuck at the gate in Lisbon for 2 hours, zero information. "
        "150k people are about to hear about this.",
        52,
    )
    assign_conversation(vip, membership=inbox.membership(owner), assignee=agent)
    add_note(
        vip,
        membership=inbox.membership(nina),
        text="Ops says the aircraft swap is done; boarding in ~20 min.",
    )
    set_tags(vip, membership=inbox.membership(agent), names=["delay", "vip"])

    untagged = inbox.post(
        sandbox,
        LUCAS,
        "Acme Air cancelled my flight to Lisbon and the refund form is broken. "
        "Nobody answers the phone.",
        95,
        mentions=False,
        origin="listening",
    )
    set_tags(untagged, membership=inbox.membership(agent), names=["refund"])

    bag = inbox.post(
        "x",
        JO,
        "@AcmeAirHelp you lost my bag on AA12 and nobody answers. Worst week ever.",
        240,
    )
    inbox.reply(
        bag,
        agent,
        "Jo, I'm so sorry. I've opened a trace for AA12 and I'm on it.",
        232,
    )
    inbox.post(
        "x",
        JO,
        "@AcmeAirHelp any news?? it's been hours",
        120,
        thread=bag.public_thread_ref,
    )
    inbox.move_private(
        bag,
        agent,
        "Jo, please send us a DM with your bag tag number so I can check the scan "
        "history.",
        110,
    )
    inbox.post(
        "x", JO, "Bag tag is AA482913, blue hard case. Thanks.", 100, private=True
    )
    set_tags(bag, membership=inbox.membership(agent), names=["baggage"])

    dm = inbox.post(
        "facebook",
        MARIA,
        "Hola, I need to change the name on my booking (typo in the surname). "
        "Reference KX7Q2M.",
        18,
        private=True,
    )
    assign_conversation(dm, membership=inbox.membership(owner), assignee=nina)

    question = inbox.post(
        "mastodon",
        TOM,
        "@acmeair can I bring a second cabin bag on the Basic fare?",
        300,
    )
    inbox.reply(
        question,
        nina,
        "Hi Tom! Basic includes one cabin bag; a second one can be added in Manage "
        "booking for 15 EUR.",
        290,
    )
    mark_pending(question, membership=inbox.membership(nina))

    praise = inbox.post(
        "instagram",
        YUKI,
        "@acmeair the new lounge in T2 is gorgeous, thank you for the upgrade!",
        26 * 60,
    )
    inbox.reply(
        praise,
        agent,
        "Thank you Yuki! So glad you enjoyed it. Have a lovely flight.",
        25 * 60,
    )
    resolve_conversation(praise, membership=inbox.membership(agent))

    failed = inbox.post(
        "x",
        BEN,
        "@AcmeAirHelp is the 7am to Berlin on time tomorrow?",
        75,
    )
    inbox.reply(
        failed,
        nina,
        "Hi Ben, it's scheduled on time; check the app for live gate info.",
        70,
        failure="X refused the reply: the account's access token was revoked "
        "(401 Unauthorized). Reconnect @AcmeAirHelp in Settings → Accounts.",
    )

    french = inbox.post(
        sandbox,
        SAMIRA,
        "@acmeair mon vol AA31 est en retard, aucune information à la porte. "
        "Inacceptable.",
        31,
    )
    set_tags(french, membership=inbox.membership(agent), names=["delay"])

    inbox.post(
        "bluesky",
        MARIA,
        "@acmeair.bsky.social thanks for sorting my seat so fast yesterday",
        8,
    )
    inbox.post(
        sandbox,
        BEN,
        "Anyone else waiting forever for Acme Air baggage at T2? 40 minutes now",
        12,
        mentions=False,
        origin="listening",
    )
    inbox.post(
        "instagram",
        SAMIRA,
        "@acmeair will the Lisbon route be back in summer? 🙏",
        4,
    )
    old = inbox.post(
        sandbox,
        JO,
        "@acmeair booked AA12 for next week, any chance of an aisle seat?",
        3 * 24 * 60,
    )
    inbox.reply(
        old,
        nina,
        "Hi Jo, done: 14C is yours. Enjoy the flight!",
        3 * 24 * 60 - 10,
    )
    resolve_conversation(old, membership=inbox.membership(nina))
    _same_person_elsewhere(tenant)
    return Conversation.objects.count()


def _same_person_elsewhere(tenant: Tenant) -> None:
    """Jo also wrote to the Sandbox account: two contacts the agent can merge."""
    contacts = list(Contact.objects.filter(display_name=JO.name).order_by("id"))
    if len(contacts) > 1:
        return
    identity = upsert_identity(
        tenant,
        "reddit",
        Author(external_id="reddit-jo", handle="jo_travels_eu", display_name=JO.name),
    )
    Contact.objects.filter(pk=identity.contact_id).update(email="jo.martin@example.com")
