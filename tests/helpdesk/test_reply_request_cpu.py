"""The reply request's shortcuts give what the long way gives.

- helpdesk.api._reply_input: the usual body `{"text": ...}` skips the input
  serializer; every body, accepted or refused, validates as
  validated_input(ReplyCreateInput) does, the same errors included.
- helpdesk.api_output.request_json reads the usual JSON body without DRF's
  parser negotiation; every body gives what `request.data` gives, data or error.
- The answer to a reply is the bytes DRF renders for the stored message, and
  the new message is represented without DRF's per-field reads.
- helpdesk.services.replies._check_visibility names the platform in each refusal
  (it looks the name up only for a refusal).
- helpdesk.deflection.deflecting_phrase with its pattern cached per setting finds
  the phrase the search phrase by phrase finds (R15).
- The near-duplicate check's (R6) character-count ratio is difflib's quick_ratio,
  and its text normalisation is unchanged.
"""

import difflib
import random
import re
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework import fields as drf_fields
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request as DrfRequest
from rest_framework.test import APIRequestFactory

from helpdesk.api import MessageListApi, MessageOutput, _reply_input
from helpdesk.api_output import output, request_json, validated_input
from helpdesk.deflection import DEFAULT_PHRASES, deflecting_phrase
from helpdesk.exceptions import PlatformRefuses, PrivateFirstRefused, ReplyInvalid
from helpdesk.models import Conversation, Message
from helpdesk.parsers import JSONParser
from helpdesk.services.inbound import InboundResult
from helpdesk.services.replies import (
    _check_visibility,
    _normalize,
    _quick_ratio,
    post_reply,
)
from social.connectors.base import Capabilities
from social.models import SocialAccount
from tenants.api_negotiation import ContentNegotiation
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, session
from tests.helpdesk.conftest import item, member, receive


def long_way(data: Any) -> tuple[str, Any]:
    try:
        return "valid", validated_input(MessageListApi.ReplyCreateInput, data)
    except ValidationError as error:
        return "error", error.detail


def short_way(data: Any) -> tuple[str, Any]:
    try:
        return "valid", _reply_input(data)
    except ValidationError as error:
        return "error", error.detail


BODIES: list[Any] = [
    {"text": "Thanks, we are looking at it now."},
    {"text": "Désolés ! Nous regardons 😊 tout de suite."},
    {"text": "x"},
    {"text": "   "},  # accepted here (no trimming); post_reply refuses it
    {"text": "y" * 10000},
    {"text": "y" * 10001},
    {"text": "é" * 10001},
    {"text": ""},
    {"text": "nul \x00 inside"},
    {"text": "lone \ud800 surrogate"},
    {"text": "é and a lone \udfff surrogate"},
    {"text": 12},
    {"text": 1.5},
    {"text": True},
    {"text": None},
    {"text": ["a"]},
    {"text": {"a": 1}},
    {"Text": "wrong key"},
    {"text": "hi", "visibility": "private"},
    {"text": "hi", "visibility": "loud"},
    {"text": "hi", "confirm": ["near_duplicate"]},
    {"text": "hi", "seen_seq": -1},
    {"text": "hi", "override_reason": "x" * 501},
    {},
    [],
    ["text"],
    "text",
    None,
    3,
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_every_body_validates_as_the_input_serializer_does(body: Any) -> None:
    assert short_way(body) == long_way(body)


def test_the_usual_body_skips_the_serializer(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("went through the input serializer")

    monkeypatch.setattr("helpdesk.api.validated_input", refuse)
    assert _reply_input({"text": "Checking now é"}) == {"text": "Checking now é"}
    with pytest.raises(AssertionError):
        _reply_input({"text": "Checking now", "visibility": "public"})


@pytest.mark.django_db(transaction=True)
def test_the_answer_is_drfs_rendering_of_the_stored_reply(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    thread = receive(account, item(text="Where is my bag?"))
    url = f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/"

    response = session(agent).post(url, {"text": "Checking it now."}, format="json")

    assert response.status_code == 201
    with tenant_context(tenant):
        stored = Message.objects.select_related("author_agent").get(
            pk=response.json()["id"]
        )
        assert response.content == JSONRenderer().render(MessageOutput(stored).data)


@pytest.mark.django_db
def test_a_new_reply_is_represented_without_drfs_field_reads(
    tenant: Tenant, agent: User, monkeypatch: pytest.MonkeyPatch, thread: Any
) -> None:
    with tenant_context(tenant):
        message = post_reply(
            thread.conversation, membership=member(tenant, agent), text="On it."
        ).message
        expected: Any = MessageOutput(message).data

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("read through Field.get_attribute")

        monkeypatch.setattr(drf_fields.Field, "get_attribute", refuse)
        got = output(MessageOutput, message)
        # A row holding TextChoices members (as a caller may set them) too.
        message.direction = Message.Direction.OUT
        message.kind = Message.Kind.REPLY
        message.delivery_status = Message.DeliveryStatus.SCHEDULED
        from_members = output(MessageOutput, message)

    assert got == expected
    assert from_members == expected
    assert JSONRenderer().render(got) == JSONRenderer().render(expected)
    assert JSONRenderer().render(from_members) == JSONRenderer().render(expected)


@pytest.mark.django_db
def test_a_new_reply_holds_its_choices_as_plain_values(
    tenant: Tenant, agent: User, thread: Any
) -> None:
    """As a row read back holds them: the statement's parameters are plain."""
    with tenant_context(tenant):
        message = post_reply(
            thread.conversation, membership=member(tenant, agent), text="On it."
        ).message
        stored = Message.objects.get(pk=message.pk)
    for name in ("direction", "visibility", "kind", "delivery_status"):
        assert type(getattr(message, name)) is str, name
        assert getattr(message, name) == getattr(stored, name), name
    assert (message.direction, message.kind, message.delivery_status) == (
        "out",
        "reply",
        "scheduled",
    )


@pytest.fixture
def thread(account: SocialAccount) -> InboundResult:
    return receive(account, item(text="My flight AA12 is delayed, any news?"))


def refusal(conversation: Conversation, caps: Capabilities, chosen: str) -> str:
    with pytest.raises((PlatformRefuses, PrivateFirstRefused, ReplyInvalid)) as err:
        _check_visibility(conversation, caps, chosen)
    return str(err.value.message)


def test_each_refusal_names_the_platform() -> None:
    brand = Brand(private_first_allowed=False)
    public = Conversation(
        platform="x", origin="mention", public_thread_ref="1", brand=brand
    )
    private = Conversation(
        platform="facebook",
        origin="direct_message",
        brand=brand,
        public_reply_count=0,
    )
    assert refusal(public, Capabilities(), "loud") == "Choose public or private."
    assert (
        refusal(public, Capabilities(public_reply=False), "public")
        == "X does not allow public replies here."
    )
    assert refusal(public, Capabilities(public_reply_needs_mention=True), "public") == (
        "X only lets you reply publicly to posts that mention your account. Answer "
        "privately if the customer accepts messages, or like the post."
    )
    assert (
        refusal(private, Capabilities(private_message=False), "private")
        == "Facebook has no private messages; reply publicly."
    )
    assert refusal(private, Capabilities(), "private") == (
        "Facebook does not let you start a private conversation. Use “Move to "
        "private” to invite the customer to message you."
    )
    private.private_thread_ref = "t1"
    private.last_customer_message_at = timezone.now() - timedelta(hours=25)
    day = Capabilities(private_reply_window=timedelta(hours=24))
    assert refusal(private, day, "private") == (
        "Facebook allows private replies within 24 hours of the customer's last "
        "message; that window has closed."
    )
    assert refusal(public, Capabilities(), "private") == (
        "Answer publicly first, in the channel the customer chose; then move to "
        "private for the details."
    )
    private.last_customer_message_at = timezone.now() - timedelta(hours=23)
    _check_visibility(private, day, "private")  # within the window: no refusal


SETTINGS: list[dict[str, list[str]] | None] = [
    None,
    {},
    {"en": []},
    {"en": ["call us", "c++ help desk", "see www.shop.example"]},
    {"fr": ["sur notre site"], "de": ["ruf uns an", "hotline"]},
    {"es": ["  "]},
]
PIECES = [
    *DEFAULT_PHRASES["en"][:8],
    DEFAULT_PHRASES["fr"][0],
    DEFAULT_PHRASES["de"][2],
    "call us",
    "c++ help desk",
    "hotline",
    "DM us",
    "send us a private message on WhatsApp",
    "on Twitter",
    "sorry to hear that",
    "thanks for your patience",
    "your bag arrives tomorrow morning at the hotel",
    "we refunded the order today",
    "+1 555 0100",
    "www.shop.example/help",
    "recall usual",
    "Ⅻ",
    "é",
]


def texts(count: int) -> list[str]:
    chooser = random.Random(15)
    made = []
    for _ in range(count):
        parts = chooser.choices(PIECES, k=chooser.randint(1, 5))
        joints = chooser.choices([". ", ", ", "; ", "! ", "\n", " ", " and "], k=5)
        made.append("".join(p + j for p, j in zip(parts, joints, strict=False)))
    return made


@pytest.mark.parametrize("setting", SETTINGS, ids=range(len(SETTINGS)))
def test_the_deflection_check_finds_what_the_phrase_by_phrase_search_finds(
    setting: dict[str, list[str]] | None,
) -> None:
    # A setting whose phrases are not in lists takes the search without the
    # cached pattern: phrase by phrase, as before.
    found = set()
    for text in texts(600):
        for platform in ("x", "facebook"):
            expected = deflecting_phrase(
                text,
                platform=platform,
                brand_phrases={k: iter(v) for k, v in (setting or {}).items()},
            )
            got = deflecting_phrase(text, platform=platform, brand_phrases=setting)
            assert got == expected, text
            found.add(got)
    assert len(found) > 3  # some texts deflect, some do not


def test_the_near_duplicate_ratios_are_difflibs() -> None:
    chooser = random.Random(6)
    alphabet = "abcdeé @#.,!?\n0123456789"
    samples = [""] + [
        "".join(chooser.choices(alphabet, k=chooser.randint(0, 60))) for _ in range(400)
    ]
    for a, b in zip(samples, samples[1:] + samples[:1], strict=True):
        expected = difflib.SequenceMatcher(None, a, b, autojunk=False).quick_ratio()
        assert _quick_ratio(a, Counter(b), len(b)) == expected
        assert _normalize(a) == " ".join(
            re.sub(r"[^\w\s]", " ", re.sub(r"[@#]\w+", " ", a.lower())).split()
        )


RAW_BODIES: list[tuple[bytes, str]] = [
    (b'{"text": "Thanks, we are looking at it now."}', "application/json"),
    ('{"text": "Désolés 😊", "n": [1, 2.5, null, true]}'.encode(), "application/json"),
    (b'{"text": "a", "text": "b"}', "application/json"),  # the last key wins
    (b'{"n": 123456789012345678901234567890}', "application/json"),
    (b'{"n": 1e400}', "application/json"),
    (b'{"text": "lone \\ud800 surrogate"}', "application/json"),
    (b'["a", 1]', "application/json"),
    (b'"just a string"', "application/json"),
    (b"  {}  ", "application/json"),
    (b'{"n": NaN}', "application/json"),
    (b'{"n": -Infinity}', "application/json"),
    (b'{"text": "unterminated', "application/json"),
    (b"\xef\xbb\xbf{}", "application/json"),  # a UTF-8 BOM
    (b'{"text": "\xff\xfe"}', "application/json"),  # not UTF-8
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),  # too deep
    (b"", "application/json"),
    (b'{"text": "x"}', "application/json; charset=utf-8"),
    (b'{"text": "x"}', "application/json; charset=latin-1"),
    (b'{"text": "x"}', "text/plain"),
    (b"text=x", "application/x-www-form-urlencoded"),
]


def _read(body: bytes, content_type: str, read: Any) -> tuple[str, str]:
    """What `read` gives for a DRF request with this body: the data's type and
    repr, or the error's type and detail."""
    django_request = APIRequestFactory().post(
        "/api/v1/t/x/conversations/1/messages/", body, content_type=content_type
    )
    request = DrfRequest(
        django_request, parsers=[JSONParser()], negotiator=ContentNegotiation()
    )
    try:
        data = read(request)
    except Exception as error:
        return type(error).__name__, str(getattr(error, "detail", error))
    return type(data).__name__, repr(data)


@pytest.mark.parametrize(("body", "content_type"), RAW_BODIES)
def test_request_json_gives_what_request_data_gives(
    body: bytes, content_type: str
) -> None:
    expected = _read(body, content_type, lambda request: request.data)
    assert _read(body, content_type, request_json) == expected


def test_request_json_reads_the_usual_body_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: Any) -> None:
        raise AssertionError("request.data read")

    monkeypatch.setattr(DrfRequest, "_load_data_and_files", refuse)
    body = b'{"text": "Thanks"}'
    assert _read(body, "application/json", request_json) == (
        "dict",
        repr({"text": "Thanks"}),
    )
    assert _read(body, "text/plain", request_json)[0] == "AssertionError"
