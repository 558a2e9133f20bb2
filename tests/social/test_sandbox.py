"""The Sandbox network end to end over real HTTP (live server): connect with OAuth and
PKCE, a customer's posts arrive as conversations through signed webhooks, replies
are delivered back to the network, and "move to private" links the customer's DM."""

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client, override_settings

from helpdesk.models import Conversation, Message
from helpdesk.services.replies import move_to_private, post_reply
from social import http as social_http
from social.connectors import get_connector
from social.connectors.base import ConnectorError
from social.models import SocialAccount, connector_ref
from social.sandbox import network
from social.sandbox.models import App, Person, Post
from social.sandbox.setup import register_earshot_app
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.conftest import login
from tests.factories import membership_of
from tests.social.fakeserver import loopback_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live(live_server: Any) -> Iterator[str]:
    url = str(live_server.url)
    apps = {
        **settings.SOCIAL_APPS,
        "sandbox": {**settings.SOCIAL_APPS["sandbox"], "base_url": url + "/sandbox"},
    }
    with override_settings(SITE_URL=url, SOCIAL_APPS=apps):
        social_http.install_client(loopback_client())
        register_earshot_app()
        yield url


def connect_through_oauth(owner: User, tenant: Tenant, live: str) -> SocialAccount:
    client = login(owner)
    with tenant_context(tenant):
        brand = Brand.objects.get()
        Brand.objects.update(
            send_hold_seconds=0, signature_rules={"sandbox": " ^{initials}"}
        )
    start = client.get(f"/t/acme-air/social/connect/sandbox/?brand={brand.pk}")
    assert start.status_code == 302
    authorize = urlsplit(start["Location"])
    assert authorize.netloc == urlsplit(live).netloc
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert (query["client_id"], query["code_challenge_method"]) == (
        "earshot-test",
        "S256",
    )
    consent = client.post(
        authorize.path, {**query, "handle": "acmeair", "name": "Acme Air"}
    )
    assert consent.status_code == 302
    callback = urlsplit(consent["Location"])
    assert callback.path == "/social/callback/sandbox/"
    done = client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302, done.content
    assert done["Location"] == "/t/acme-air/settings/accounts/"
    with tenant_context(tenant):
        return SocialAccount.objects.select_related("brand").get()


def test_connect_post_reply_and_move_to_private(
    owner: User, agent: User, tenant: Tenant, live: str
) -> None:
    account = connect_through_oauth(owner, tenant, live)
    brand_person = Person.objects.get(handle="acmeair")
    assert (account.platform, account.handle, account.external_id) == (
        "sandbox",
        "acmeair",
        str(brand_person.pk),
    )
    assert "access_token" not in account.credentials

    jo = Person.objects.create(handle="jo", name="Jo", followers=300)
    complaint, _ = network.create_post(jo, "@acmeair my flight AA12 is delayed again!!")
    with tenant_context(tenant):
        conversation = Conversation.objects.get()
    assert (conversation.origin, conversation.public_thread_ref) == (
        "mention",
        str(complaint.pk),
    )

    with tenant_context(tenant):
        post_reply(
            conversation,
            membership=membership_of(tenant, agent),
            text="Sorry Jo, checking AA12 now",
        )
    # The hold is 0 s here; eager Celery delivered on commit, over HTTP.
    with tenant_context(tenant):
        message = Message.objects.get(direction="out")
    assert (message.delivery_status, message.attempts) == ("sent", 1)
    answer = Post.objects.get(pk=int(message.external_id or 0))
    assert (answer.author.handle, answer.in_reply_to_id, answer.text) == (
        "acmeair",
        complaint.pk,
        "Sorry Jo, checking AA12 now ^A",
    )

    with tenant_context(tenant):
        move_to_private(
            conversation,
            membership=membership_of(tenant, agent),
            public_text="Please DM us your booking reference, Jo",
        )
    network.send_message(jo, brand_person, "Booking ref XYZ789")
    with tenant_context(tenant):
        assert Conversation.objects.count() == 1
        fresh = Conversation.objects.get()
        inbound = list(
            Message.objects.filter(direction="in")
            .order_by("id")
            .values_list("visibility", "text")
        )
    assert (fresh.channel_state, fresh.awaiting_private) == ("private", False)
    assert inbound == [
        ("public", "@acmeair my flight AA12 is delayed again!!"),
        ("private", "Booking ref XYZ789"),
    ]
    with tenant_context(tenant):
        post_reply(
            fresh, membership=membership_of(tenant, agent), text="Thanks, rebooked you"
        )
    with tenant_context(tenant):
        private = Message.objects.filter(direction="out", visibility="private").get()
    assert private.delivery_status == "sent"
    assert jo.received.get().text == "Thanks, rebooked you"


def test_untagged_posts_arrive_only_when_a_listening_rule_matches(
    owner: User, tenant: Tenant, live: str
) -> None:
    from social.models import ListeningRule

    account = connect_through_oauth(owner, tenant, live)
    with tenant_context(tenant):
        ListeningRule.objects.create(
            brand=account.brand,
            name="Brand name",
            query='("acme air" OR acmeair) -hiring',
            variants={"acme air": ["akme air"]},
        )
        ListeningRule.objects.create(
            brand=account.brand,
            name="Industry",
            query="airline NEAR/2 strike",
            action="feed",
        )
    jo = Person.objects.create(handle="jo", name="Jo")
    network.create_post(jo, "Acme Air lost my bag at T2, again")
    network.create_post(jo, "akme air cancelled my flight")
    network.create_post(jo, "Acme Air is hiring pilots")
    network.create_post(jo, "the airline pilots strike tomorrow")
    network.create_post(jo, "I love pizza")
    with tenant_context(tenant):
        recorded = sorted(Conversation.objects.values_list("origin", "preview"))
    assert recorded == [
        ("listening", "Acme Air lost my bag at T2, again"),
        ("listening", "akme air cancelled my flight"),
    ]


def test_the_api_refuses_bad_tokens_and_rate_limits(
    owner: User, tenant: Tenant, live: str
) -> None:
    account = connect_through_oauth(owner, tenant, live)
    with tenant_context(tenant):
        ref = connector_ref(SocialAccount.objects.get(pk=account.pk))
    connector = get_connector("sandbox")
    bad = type(ref)(**{**ref.__dict__, "credentials": {"access_token": "nope"}})
    with pytest.raises(ConnectorError) as refused:
        connector.fetch_since(bad, "")
    assert (refused.value.auth, refused.value.status) == (True, 401)
    with override_settings(SANDBOX_RATE_LIMIT_PER_MINUTE=2):
        connector.fetch_since(ref, "")
        connector.fetch_since(ref, "")
        with pytest.raises(ConnectorError) as limited:
            connector.fetch_since(ref, "")
    assert limited.value.status == 429
    assert limited.value.retry_after is not None
    assert 0 < limited.value.retry_after <= 60


def test_polling_mentions_follows_the_cursor(
    owner: User, tenant: Tenant, live: str
) -> None:
    account = connect_through_oauth(owner, tenant, live)
    jo = Person.objects.create(handle="jo", name="Jo")
    network.create_post(jo, "@acmeair one")
    network.create_post(jo, "no tag here")
    second, _ = network.create_post(jo, "@AcmeAir two")
    with tenant_context(tenant):
        ref = connector_ref(SocialAccount.objects.get(pk=account.pk))
    connector = get_connector("sandbox")
    result = connector.fetch_since(ref, "")
    assert [item.text for item in result.items] == ["@acmeair one", "@AcmeAir two"]
    assert result.cursor == str(second.pk)
    assert connector.fetch_since(ref, result.cursor).items == []


def test_an_idempotency_key_replay_returns_the_first_post(
    owner: User, tenant: Tenant, live: str
) -> None:
    account = connect_through_oauth(owner, tenant, live)
    jo = Person.objects.create(handle="jo", name="Jo")
    complaint, _ = network.create_post(jo, "@acmeair hello")
    with tenant_context(tenant):
        ref = connector_ref(SocialAccount.objects.get(pk=account.pk))
    from social.connectors.base import OutboundReply

    reply = OutboundReply(
        client_ref="ref-1",
        text="Hi Jo",
        visibility="public",
        in_reply_to=str(complaint.pk),
    )
    connector = get_connector("sandbox")
    assert connector.find_delivery(ref, reply) is None
    sent = connector.send(ref, reply)
    again = connector.send(ref, reply)
    assert sent.external_id == again.external_id
    found = connector.find_delivery(ref, reply)
    assert found is not None
    assert found.external_id == sent.external_id
    assert Post.objects.filter(author__handle="acmeair").count() == 1


def test_a_forged_state_or_a_wrong_verifier_connects_nothing(
    owner: User, tenant: Tenant, live: str
) -> None:
    client = login(owner)
    forged = client.get("/social/callback/sandbox/?code=abc&state=forged")
    assert forged.status_code == 400
    assert b"expired or was not started here" in forged.content
    app = App.objects.get(client_id="earshot-test")
    token = Client().post(
        "/sandbox/api/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": "nope",
            "client_id": app.client_id,
            "client_secret": "wrong",
        },
    )
    assert (token.status_code, token.json()) == (401, {"error": "invalid client"})
    with tenant_context(tenant):
        assert SocialAccount.objects.count() == 0


def test_polling_records_mentions_then_nothing_twice(
    owner: User, tenant: Tenant, live: str
) -> None:
    from social.tasks import poll_account, poll_due_accounts

    account = connect_through_oauth(owner, tenant, live)
    jo = Person.objects.create(handle="jo", name="Jo")
    with override_settings(SANDBOX_ENABLED=True):
        App.objects.update(webhook_url="")  # polling only: no webhooks this time
        network.create_post(jo, "@acmeair where is my refund?")
        network.create_post(jo, "@acmeair hello??")
    # Eager Celery: the fan-out's poll runs as soon as the fan-out commits.
    assert poll_due_accounts.run(tenant.pk) == 1
    assert poll_account.run(tenant.pk, account.pk) == 0
    with tenant_context(tenant):
        fresh = SocialAccount.objects.get(pk=account.pk)
        assert Conversation.objects.count() == 2
    assert fresh.poll_cursor == str(Post.objects.order_by("-pk")[0].pk)
    assert fresh.next_poll_at is not None
    assert poll_due_accounts.run(tenant.pk) == 0


def test_a_revoked_token_turns_the_account_needs_reauth_and_tells_the_admins(
    owner: User, admin: User, agent: User, tenant: Tenant, live: str
) -> None:
    from django.core import mail

    from social.sandbox.models import Grant
    from social.tasks import poll_account

    account = connect_through_oauth(owner, tenant, live)
    Grant.objects.update(revoked=True)
    mail.outbox.clear()
    assert poll_account.run(tenant.pk, account.pk) == 0
    with tenant_context(tenant):
        fresh = SocialAccount.objects.get(pk=account.pk)
    assert (fresh.status, fresh.last_error) == (
        "needs_reauth",
        "invalid or expired access token",
    )
    assert sorted(mail.outbox[0].to) == ["ada@acme.example", "olivia@acme.example"]
    assert mail.outbox[0].subject == "Reconnect @acmeair on Sandbox"
    page = login(agent).get("/t/acme-air/")
    assert b"@acmeair on Sandbox needs to be reconnected" in page.content


def test_a_rate_limited_poll_backs_off(owner: User, tenant: Tenant, live: str) -> None:
    from django.utils import timezone

    from social.tasks import poll_account

    account = connect_through_oauth(owner, tenant, live)
    with override_settings(SANDBOX_RATE_LIMIT_PER_MINUTE=0):
        assert poll_account.run(tenant.pk, account.pk) == 0
    with tenant_context(tenant):
        fresh = SocialAccount.objects.get(pk=account.pk)
    assert (fresh.status, fresh.poll_failures) == ("connected", 1)
    assert fresh.next_poll_at is not None
    assert fresh.next_poll_at > timezone.now()


def test_disconnecting_revokes_the_grant_on_the_network(
    owner: User, tenant: Tenant, live: str
) -> None:
    from social.sandbox.models import Grant

    account = connect_through_oauth(owner, tenant, live)
    assert list(Grant.objects.values_list("revoked", flat=True)) == [False]
    response = login(owner).post(
        f"/connect/acme-air/accounts/{account.pk}/disconnect/", follow=True
    )
    assert b"Disconnected @acmeair. Sandbox revoked Earshot&#x27;s access." in (
        response.content
    )
    assert list(Grant.objects.values_list("revoked", flat=True)) == [True]
    with tenant_context(tenant):
        fresh = SocialAccount.objects.get(pk=account.pk)
    assert (fresh.status, fresh.credentials) == ("disconnected", "")
