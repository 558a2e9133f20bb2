"""Language and sentiment on ingest (one at a time and batched), the languages
members answer in (API and settings form), auto-assignment's preference for them,
and the inbox's language filter (API and page). Denials assert nothing changed.
"""

import re
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from helpdesk.models import Conversation, Message
from helpdesk.presence import MemoryPresence
from helpdesk.services import assignment
from helpdesk.services.inbound_batch import record_inbound_batch
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tests.api_clients import base, session, token_client
from tests.conftest import login
from tests.factories import add_member, make_user, membership_of
from tests.helpdesk.conftest import item, receive, reload

pytestmark = pytest.mark.django_db

FRENCH = "Vous avez perdu ma valise et personne ne répond. Service lamentable."
GERMAN = "Sie haben meinen Koffer verloren und keiner antwortet. Eine Frechheit."
ENGLISH = "Thank you so much, the new phone arrived and works perfectly!"


def message_reading(tenant: Tenant, pk: int) -> tuple[str, float | None, bool]:
    with tenant_context(tenant):
        message = Message.objects.get(pk=pk)
    return message.language, message.sentiment_score, message.angry


def languages_of(tenant: Tenant, user: User) -> list[str]:
    return list(membership_of(tenant, user).languages)


# Ingest ---------------------------------------------------------------------------


def test_one_message_gets_its_language_score_and_anger(
    tenant: Tenant, account: SocialAccount
) -> None:
    result = receive(
        account, item(text="WORST airline ever. You lost my bag and nobody answers!!")
    )
    language, score, angry = message_reading(tenant, result.message.pk)
    assert (language, angry) == ("en", True)
    assert score is not None
    assert score <= -0.6
    conversation = reload(result.conversation)
    assert (conversation.language, conversation.sentiment) == ("en", "negative")


def test_the_conversation_keeps_the_last_language_it_could_tell(
    tenant: Tenant, account: SocialAccount
) -> None:
    first = receive(account, item(text=FRENCH, external_id="p1", thread="t1"))
    assert reload(first.conversation).language == "fr"
    short = receive(account, item(text="ok ?", external_id="p2", thread="t1"))
    assert short.conversation.pk == first.conversation.pk
    assert message_reading(tenant, short.message.pk)[0] == ""
    assert reload(first.conversation).language == "fr"
    receive(account, item(text=ENGLISH, external_id="p3", thread="t1"))
    assert reload(first.conversation).language == "en"


def test_a_batch_reads_every_message(tenant: Tenant, account: SocialAccount) -> None:
    entries = [
        (account, item(text=GERMAN, author="a1", external_id="b1")),
        (account, item(text=ENGLISH, author="a2", external_id="b2")),
        (account, item(text="😍", author="a3", external_id="b3")),
    ]
    with tenant_context(tenant):
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account.pk
        )
        outcome = record_inbound_batch(
            tenant, [(account, entry) for _a, entry in entries]
        )
    assert outcome is not None
    with tenant_context(tenant):
        rows = list(
            Message.objects.order_by("external_id").values_list(
                "external_id", "language", "angry", "conversation__language"
            )
        )
        scores = dict(Message.objects.values_list("external_id", "sentiment_score"))
    assert rows == [
        ("b1", "de", True, "de"),
        ("b2", "en", False, "en"),
        ("b3", "", False, ""),
    ]
    assert scores["b1"] is not None
    assert scores["b1"] < 0
    assert scores["b2"] is not None
    assert scores["b2"] > 0
    assert scores["b3"] is not None
    assert scores["b3"] > 0  # the emoji, read by VADER


# Auto-assignment ----------------------------------------------------------------


@pytest.fixture
def presence(monkeypatch: pytest.MonkeyPatch) -> MemoryPresence:
    store = MemoryPresence()
    monkeypatch.setattr(assignment, "presence_store", lambda: store)
    return store


def _agents(
    tenant: Tenant, presence: MemoryPresence, *languages: list[str]
) -> list[User]:
    users = []
    for number, spoken in enumerate(languages):
        user = make_user(f"agent{number}@acme.example")
        membership = add_member(tenant, user, Membership.Role.AGENT)
        with tenant_context(tenant):
            Membership.objects.filter(pk=membership.pk).update(languages=spoken)
        presence.touch(tenant.pk, user.pk)
        users.append(user)
    return users


def test_auto_assign_prefers_a_member_who_answers_in_the_language(
    tenant: Tenant, account: SocialAccount, presence: MemoryPresence
) -> None:
    english, french = _agents(tenant, presence, ["en"], ["fr", "en"])
    picks = [
        receive(
            account, item(text=FRENCH, author=f"c{n}", external_id=f"f{n}")
        ).conversation.assignee_id
        for n in range(3)
    ]
    assert picks == [french.pk] * 3
    german = receive(account, item(text=GERMAN, author="d", external_id="g1"))
    # Nobody lists German: the usual rule (least load) picks the other agent.
    assert german.conversation.assignee_id == english.pk


def test_a_full_speaker_gives_way_to_the_usual_rule(
    tenant: Tenant, account: SocialAccount, presence: MemoryPresence
) -> None:
    english, french = _agents(tenant, presence, ["en"], ["fr"])
    with tenant_context(tenant):
        Membership.objects.filter(user=french).update(capacity=1)
    first = receive(account, item(text=FRENCH, author="c1", external_id="f1"))
    second = receive(account, item(text=FRENCH, author="c2", external_id="f2"))
    assert first.conversation.assignee_id == french.pk
    assert second.conversation.assignee_id == english.pk


# Member languages: API ----------------------------------------------------------


def test_a_member_sets_their_own_languages_and_the_list_shows_them(
    tenant: Tenant, agent: User
) -> None:
    mine = membership_of(tenant, agent)
    client = token_client(tenant, agent, "write")
    response = client.put(
        f"{base(tenant)}/members/{mine.pk}/languages/",
        {"languages": ["fr", "es", "fr"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["languages"] == ["fr", "es"]
    assert languages_of(tenant, agent) == ["fr", "es"]
    listed = client.get(f"{base(tenant)}/members/").json()
    assert next(m for m in listed if m["id"] == mine.pk)["languages"] == ["fr", "es"]


def test_an_admin_sets_anyones_languages(
    tenant: Tenant, admin: User, agent: User
) -> None:
    target = membership_of(tenant, agent)
    response = session(admin).put(
        f"{base(tenant)}/members/{target.pk}/languages/",
        {"languages": ["de"]},
        format="json",
    )
    assert response.status_code == 200
    assert languages_of(tenant, agent) == ["de"]


@pytest.mark.parametrize(
    "payload",
    [
        {"languages": ["xx"]},
        {"languages": ["FR"]},
        {"languages": "fr"},
        {"languages": [["fr"]]},
        {"languages": ["fr"] * 8},
        {},
    ],
)
def test_bad_languages_get_a_400_on_the_field(
    tenant: Tenant, agent: User, payload: dict[str, object]
) -> None:
    mine = membership_of(tenant, agent)
    response = session(agent).put(
        f"{base(tenant)}/members/{mine.pk}/languages/", payload, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["languages"]
    assert languages_of(tenant, agent) == []


def test_an_agent_cannot_set_someone_elses_languages(
    tenant: Tenant, agent: User, admin: User
) -> None:
    target = membership_of(tenant, admin)
    response = session(agent).put(
        f"{base(tenant)}/members/{target.pk}/languages/",
        {"languages": ["fr"]},
        format="json",
    )
    assert response.status_code == 403
    assert languages_of(tenant, admin) == []


def test_a_read_token_or_a_viewer_cannot_set_languages(
    tenant: Tenant, agent: User, viewer: User
) -> None:
    mine = membership_of(tenant, agent)
    url = f"{base(tenant)}/members/{mine.pk}/languages/"
    read = token_client(tenant, agent, "read")
    assert read.put(url, {"languages": ["fr"]}, format="json").status_code == 403
    theirs = membership_of(tenant, viewer)
    response = session(viewer).put(
        f"{base(tenant)}/members/{theirs.pk}/languages/",
        {"languages": ["fr"]},
        format="json",
    )
    assert response.status_code == 403
    assert (languages_of(tenant, agent), languages_of(tenant, viewer)) == ([], [])


def test_an_outsider_gets_404_and_changes_nothing(
    tenant: Tenant, agent: User, outsider: User, other_tenant: Tenant
) -> None:
    target = membership_of(tenant, agent)
    foreign = membership_of(other_tenant, outsider)
    for client, url in (
        (session(outsider), f"{base(tenant)}/members/{target.pk}/languages/"),
        # An owner of this workspace naming the other workspace's member.
        (
            session(membership_of(tenant, agent).user),
            f"{base(tenant)}/members/{foreign.pk}/languages/",
        ),
    ):
        response = client.put(url, {"languages": ["fr"]}, format="json")
        assert response.status_code == 404, url
    assert languages_of(tenant, agent) == []
    assert languages_of(other_tenant, outsider) == []


# Member languages: the settings page ---------------------------------------------


def test_the_members_page_edits_languages(
    tenant: Tenant, owner: User, agent: User
) -> None:
    target = membership_of(tenant, agent)
    client = login(owner)
    page = client.get("/t/acme-air/settings/members/").content.decode()
    assert f'action="/t/acme-air/settings/members/{target.pk}/languages/"' in page
    response = client.post(
        f"/t/acme-air/settings/members/{target.pk}/languages/",
        {"languages": ["es", "pt"]},
    )
    assert response.status_code == 302
    assert languages_of(tenant, agent) == ["es", "pt"]
    page = client.get("/t/acme-air/settings/members/").content.decode()
    assert 'value="es" checked' in page
    assert 'value="pt" checked' in page


def test_the_form_refuses_an_unknown_language_with_a_400(
    tenant: Tenant, agent: User
) -> None:
    mine = membership_of(tenant, agent)
    response = login(agent).post(
        f"/t/acme-air/settings/members/{mine.pk}/languages/", {"languages": ["xx"]}
    )
    assert response.status_code == 400
    assert "xx is not a language we detect." in response.content.decode()
    assert languages_of(tenant, agent) == []


def test_the_form_refuses_agents_on_others_and_outsiders(
    tenant: Tenant, agent: User, admin: User, outsider: User
) -> None:
    target = membership_of(tenant, admin)
    url = f"/t/acme-air/settings/members/{target.pk}/languages/"
    assert login(agent).post(url, {"languages": ["fr"]}).status_code == 403
    assert login(outsider).post(url, {"languages": ["fr"]}).status_code == 404
    assert languages_of(tenant, admin) == []


# The inbox's language filter ------------------------------------------------------


@pytest.fixture
def mixed_inbox(account: SocialAccount) -> dict[str, Conversation]:
    return {
        "fr": receive(account, item(text=FRENCH, author="c1")).conversation,
        "de": receive(account, item(text=GERMAN, author="c2")).conversation,
        "unknown": receive(account, item(text="ok", author="c3")).conversation,
    }


def test_the_api_filters_by_language(
    tenant: Tenant, agent: User, mixed_inbox: dict[str, Conversation]
) -> None:
    client = token_client(tenant, agent, "read")
    for query, expected in (("fr", "fr"), ("de", "de"), ("unknown", "unknown")):
        body = client.get(f"{base(tenant)}/conversations/?language={query}").json()
        assert [row["id"] for row in body["results"]] == [mixed_inbox[expected].pk]
        assert body["results"][0]["language"] == ("" if query == "unknown" else query)
    assert (
        client.get(f"{base(tenant)}/conversations/?language=es").json()["results"] == []
    )


@pytest.mark.parametrize("code", ["xx", "FR", "fra", "f%00", "fr,de"])
def test_a_malformed_language_gets_a_400_on_the_field(
    tenant: Tenant, agent: User, code: str
) -> None:
    response = session(agent).get(f"{base(tenant)}/conversations/?language={code}")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["language"]


def test_the_thread_api_shows_each_messages_language(
    tenant: Tenant, agent: User, mixed_inbox: dict[str, Conversation]
) -> None:
    conversation = mixed_inbox["de"]
    body = (
        session(agent)
        .get(f"{base(tenant)}/conversations/{conversation.pk}/messages/")
        .json()
    )
    rows = body["results"] if isinstance(body, dict) else body
    assert [(m["language"], m["angry"]) for m in rows] == [("de", True)]
    assert rows[0]["sentiment_score"] < 0


def conv_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="conv-(\d+)"', html)]


def test_the_inbox_page_filters_by_language_and_shows_it(
    owner: User, mixed_inbox: dict[str, Conversation]
) -> None:
    client = login(owner)
    everything = client.get("/t/acme-air/inbox/").content.decode()
    assert '<select name="language"' in everything
    assert '<option value="fr">French</option>' in everything
    assert sorted(conv_ids(everything)) == sorted(c.pk for c in mixed_inbox.values())
    assert 'title="Detected language">FR</span>' in everything
    french = client.get("/t/acme-air/inbox/?language=fr").content.decode()
    assert conv_ids(french) == [mixed_inbox["fr"].pk]
    unknown = client.get("/t/acme-air/inbox/?language=unknown").content.decode()
    assert conv_ids(unknown) == [mixed_inbox["unknown"].pk]
    # A bad value is ignored, like the page's other filters.
    ignored = client.get("/t/acme-air/inbox/?language=xx").content.decode()
    assert sorted(conv_ids(ignored)) == sorted(conv_ids(everything))


def test_the_thread_page_shows_the_language_and_anger(
    owner: User, mixed_inbox: dict[str, Conversation]
) -> None:
    conversation = mixed_inbox["de"]
    html = login(owner).get(f"/t/acme-air/inbox/{conversation.pk}/").content.decode()
    assert 'title="Detected language">DE</span>' in html
    assert 'title="Reads as angry">Angry</span>' in html


def test_an_outsider_cannot_filter_this_inbox(
    tenant: Tenant,
    outsider: User,
    other_tenant: Tenant,
    mixed_inbox: dict[str, Conversation],
) -> None:
    assert login(outsider).get("/t/acme-air/inbox/?language=fr").status_code == 404
    response = session(outsider).get(f"{base(tenant)}/conversations/?language=fr")
    assert response.status_code == 404
    assert b"valise" not in response.content


def test_the_demo_shows_languages_and_its_inbox_filters_by_them() -> None:
    call_command("seed_demo", stdout=StringIO())
    tenant = Tenant.objects.get(slug="acme-air")
    owner = User.objects.get(email="owner@acme-air.example")
    with tenant_context(tenant):
        languages = Counter(
            Conversation.objects.filter(status="open").values_list(
                "language", flat=True
            )
        )
        french = set(
            Conversation.objects.filter(status="open", language="fr").values_list(
                "pk", flat=True
            )
        )
        nina = Membership.objects.get(user__email="nina@acme-air.example")
    print(f"\ndemo open conversations by language: {dict(languages)}")  # noqa: T201
    # The seeded demo posts in English and French (helpdesk.management.commands).
    assert languages["en"] > 0
    assert languages["fr"] > 0
    assert nina.languages == ["en", "fr", "es"]
    client = Client()
    client.force_login(owner)
    page = client.get("/t/acme-air/inbox/?language=fr").content.decode()
    assert set(conv_ids(page)) == french
    assert 'title="Detected language">FR</span>' in page
    assert 'title="Detected language">EN</span>' not in page
