"""R15, no deflection: the pure check, the composer's warning in post_reply, and
the brand's phrases through the API."""

import pytest

from helpdesk.deflection import DEFAULT_PHRASES, deflecting_phrase
from helpdesk.exceptions import ReplyNeedsConfirmation
from helpdesk.models import Message
from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Tenant, User
from tests.conftest import login
from tests.helpdesk.conftest import item, member, receive


def check(text: str, platform: str = "x", **kwargs: object) -> str | None:
    return deflecting_phrase(text, platform=platform, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        (
            "Sorry to hear that. Please call our hotline on 0800 123 456.",
            "call our hotline",
        ),
        ("Hi Jo, please email us at care@acme.example ^AB", "email us"),
        (
            "Thanks for reaching out! Visit our website for more details.",
            "visit our website",
        ),
        ("We understand, please DM us on WhatsApp.", "please dm us on whatsapp"),
        ("Désolés ! Appelez notre service client au 01 23 45 67 89.", "appelez notre"),
        ("Lo sentimos. Llámenos al 900 123 456, por favor.", "llámenos"),
        (
            "Das tut uns leid. Bitte rufen Sie unsere Hotline an.",
            "rufen sie unsere hotline",
        ),
    ],
)
def test_a_reply_that_only_sends_the_customer_elsewhere_deflects(
    text: str, phrase: str
) -> None:
    assert check(text) == phrase


@pytest.mark.parametrize(
    "text",
    [
        # Answers, and points elsewhere for the rest.
        "Your refund was issued today and reaches your card within 5 days. "
        "For anything else, call our hotline.",
        # Invites a private message on the same platform.
        "Sorry about that! Please send us a DM with your booking reference.",
        "Send us a DM here on Twitter and we will sort it out, or call our hotline.",
        "Envoyez-nous un message privé avec votre numéro de réservation.",
        "Escríbenos por privado, por favor.",
        "Schicken Sie uns bitte eine Direktnachricht.",
        # Sends nobody away.
        "Your bag is on its way to your home address and arrives tonight.",
        "",
    ],
)
def test_answering_or_inviting_a_private_message_here_does_not_deflect(
    text: str,
) -> None:
    assert check(text) is None


def test_a_dm_on_another_platform_deflects_but_on_this_one_it_does_not() -> None:
    text = "Please message us on Instagram."
    assert check(text, platform="x") == "please message us on instagram"
    assert check(text, platform="meta") is None


def test_brand_phrases_replace_the_defaults_of_their_language_only() -> None:
    custom = {"en": ["ask at the gate"]}
    assert check("Please ask at the gate.", brand_phrases=custom) == "ask at the gate"
    assert check("Please call our hotline.", brand_phrases=custom) is None
    assert check("Appelez-nous au 3654.", brand_phrases=custom) == "appelez-nous"
    assert check("Please call our hotline.", brand_phrases={"en": []}) is None


def test_the_defaults_cover_four_languages() -> None:
    assert sorted(DEFAULT_PHRASES) == ["de", "en", "es", "fr"]


# --- post_reply: the composer's warning --------------------------------------------

DEFLECTING = "So sorry! Please call our hotline on 0800 123 456."


@pytest.mark.django_db
def test_a_deflecting_public_reply_needs_confirming(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant), pytest.raises(ReplyNeedsConfirmation) as refused:
        post_reply(conversation, membership=member(tenant, agent), text=DEFLECTING)
    assert refused.value.warnings == {
        "deflection": "This public reply only sends the customer elsewhere (“call "
        "our hotline”). Answer here, or invite a private message on this platform; "
        "spectators see the reply too."
    }
    with tenant_context(tenant):
        assert not Message.objects.filter(direction="out").exists()
        outcome = post_reply(
            conversation,
            membership=member(tenant, agent),
            text=DEFLECTING,
            confirm=["deflection"],
        )
    assert outcome.warnings_confirmed == {"deflection"}
    assert outcome.message.text == DEFLECTING


@pytest.mark.django_db
def test_a_private_reply_is_never_warned(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = receive(account, item(visibility="private")).conversation
    with tenant_context(tenant):
        outcome = post_reply(
            conversation,
            membership=member(tenant, agent),
            text=DEFLECTING,
            visibility="private",
        )
    assert outcome.warnings_confirmed == frozenset()
    assert outcome.message.visibility == "private"


@pytest.mark.django_db
def test_the_brand_phrases_are_what_post_reply_checks(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        Brand.objects.update(deflection_phrases={"en": ["ask at the gate"]})
        with pytest.raises(ReplyNeedsConfirmation) as refused:
            post_reply(
                conversation,
                membership=member(tenant, agent),
                text="Please ask at the gate.",
            )
        assert set(refused.value.warnings) == {"deflection"}
        queued = post_reply(
            conversation, membership=member(tenant, agent), text=DEFLECTING
        )
    assert queued.warnings_confirmed == frozenset()


# --- the API ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_warns_and_takes_the_confirmation(
    tenant: Tenant, owner: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    client = login(owner)
    url = f"/api/v1/t/acme-air/conversations/{conversation.pk}/messages/"
    warned = client.post(url, {"text": DEFLECTING}, content_type="application/json")
    assert warned.status_code == 409
    assert warned.json()["code"] == "needs_confirmation"
    assert list(warned.json()["details"]["warnings"]) == ["deflection"]
    sent = client.post(
        url,
        {"text": DEFLECTING, "confirm": ["deflection"]},
        content_type="application/json",
    )
    assert sent.status_code == 201


@pytest.mark.django_db
def test_admins_set_the_phrases_and_members_read_them(
    tenant: Tenant, owner: User, agent: User
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    url = f"/api/v1/t/acme-air/brands/{brand.pk}/deflection/"
    saved = login(owner).put(
        url,
        {"phrases": {"en": ["  Ask at the Gate ", "ask at the gate"], "fr": []}},
        content_type="application/json",
    )
    assert saved.status_code == 200
    assert saved.json()["custom"] == {"en": ["ask at the gate"], "fr": []}
    read = login(agent).get(url)
    assert read.status_code == 200
    assert read.json()["effective"]["en"] == ["ask at the gate"]
    assert read.json()["effective"]["de"] == DEFAULT_PHRASES["de"]
    refused = login(agent).put(
        url, {"phrases": {"en": []}}, content_type="application/json"
    )
    assert refused.status_code == 403
    with tenant_context(tenant):
        assert Brand.objects.get().deflection_phrases == {
            "en": ["ask at the gate"],
            "fr": [],
        }
        assert AuditEvent.objects.filter(action="brand.deflection_updated").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("phrases", "messages"),
    [
        (
            "call us",
            ['Give an object of phrase lists per language, e.g. {"en": ["call us"]}.'],
        ),
        (
            {"english": ["call us"]},
            ["'english' is not a two-letter language code (en, fr)."],
        ),
        ({"en": "call us"}, ["en: give a list of phrases."]),
        (
            {"en": ["call us", "x", 3]},
            ["en, phrase 2: give 3 to 80 characters.", "en, phrase 3: give a text."],
        ),
    ],
)
def test_malformed_phrases_are_field_errors_and_change_nothing(
    tenant: Tenant, owner: User, phrases: object, messages: list[str]
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    response = login(owner).put(
        f"/api/v1/t/acme-air/brands/{brand.pk}/deflection/",
        {"phrases": phrases},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {"phrases": messages}
    with tenant_context(tenant):
        assert Brand.objects.get().deflection_phrases == {}


@pytest.mark.django_db
def test_an_outsider_gets_404_and_changes_nothing(
    tenant: Tenant, outsider: User, other_tenant: Tenant
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    url = f"/api/v1/t/acme-air/brands/{brand.pk}/deflection/"
    charlie = login(outsider)
    assert charlie.get(url).status_code == 404
    put = charlie.put(url, {"phrases": {"en": []}}, content_type="application/json")
    assert put.status_code == 404
    with tenant_context(tenant):
        assert Brand.objects.get().deflection_phrases == {}


@pytest.mark.django_db
def test_the_brand_settings_page_shows_the_phrases_per_language(
    tenant: Tenant, owner: User
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        Brand.objects.update(deflection_phrases={"en": ["ask at the gate"]})
    page = login(owner).get(f"/t/acme-air/settings/brands/{brand.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<textarea id="deflect-en"' in html
    assert ">ask at the gate</textarea>" in html
    assert ">appelez notre\nappelez-nous\n" in html  # French: the defaults
    assert 'src="/static/frontend/js/brand_settings.js"' in html  # imports it
