"""The reply's answer: the same status, bytes and headers as DRF's Response.

helpdesk.api_output.json_answer writes a body of plain values with orjson when
the request negotiated DRF's JSONRenderer plainly; these tests hold its bytes
equal to the renderer's, its answers equal to the Response it replaces, and
show that anything else still gets that Response."""

from typing import Any

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory

from helpdesk import api
from helpdesk.api_output import json_answer
from social.models import SocialAccount
from tenants.models import Tenant, User
from tests.api_clients import base, open_api_channel, push, token_client
from tests.social.test_channel_answer import _answer, _drf_answer

# Headers that differ from one request to the next whatever answers them.

# Every character a JSON string treats specially, and some it does not.
_AWKWARD = (
    'quote " backslash \\ slash / controls \x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f '
    "separators \u2028 and \u2029 twice \u2028\u2029 accents é ñ CJK 漢字 "
    "emoji 🙂 bidi \u202e zero width \u200b nbsp \xa0 end"
)


# What a reply's text may hold (the text field refuses NUL).
_REPLY_TEXT = _AWKWARD.replace("\x00", "")


def _negotiated(accept: str = "application/json") -> Any:
    request = APIRequestFactory().get("/", HTTP_ACCEPT=accept)
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = accept
    return request


def _rendered(body: Any) -> bytes:
    return JSONRenderer().render(body, JSONRenderer.media_type, {})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": _AWKWARD},
        {
            "id": 2**63 - 1,
            "low": -(2**63),
            "high": 2**64 - 1,
            "zero": 0,
            "yes": True,
            "no": False,
            "none": None,
            "author": {"type": "agent", "id": 7, "name": "Ann \u2028 Lee"},
            "tags": ["a", "\u2029", 3, None, {"k": [True]}],
            _AWKWARD: "key",
        },
    ],
)
def test_plain_bodies_are_written_as_the_renderer_writes_them(
    body: dict[str, Any],
) -> None:
    answer = json_answer(_negotiated(), body, 201)

    assert type(answer) is not Response
    assert answer.status_code == 201
    assert answer["Content-Type"] == "application/json"
    assert answer.content == _rendered(body)


@pytest.mark.parametrize(
    "body",
    [
        {"score": 1e-05},  # orjson writes 1e-5
        {"score": 0.5},
        {"big": 2**64},  # beyond orjson's integers
        {"small": -(2**63) - 1},
        {"nested": {"score": 1e16}},
        {"listed": [1, 2.5]},
        {"when": __import__("datetime").date(2026, 12, 7)},
        {"choice": True, "count": __import__("decimal").Decimal("1.5")},
        {1: "an int key"},
    ],
)
def test_other_bodies_get_drfs_response(body: dict[Any, Any]) -> None:
    answer = json_answer(_negotiated(), body, 201)

    assert type(answer) is Response
    assert answer.status_code == 201
    assert answer.data is body


def test_an_accept_with_parameters_gets_drfs_response() -> None:
    answer = json_answer(_negotiated("application/json; indent=2"), {"a": 1}, 201)

    assert type(answer) is Response


def _without_length(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name != "content-length"]


@pytest.mark.django_db(transaction=True)
def test_a_reply_is_answered_as_drf_answered_it(
    tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel: SocialAccount = open_api_channel(tenant, owner)
    client: APIClient = token_client(tenant, owner, "admin")
    first = push(client, tenant, channel, 0).json()["conversation_id"]
    second = push(client, tenant, channel, 1).json()["conversation_id"]
    url = f"{base(tenant)}/conversations/{{}}/messages/"

    fast = client.post(url.format(first), {"text": _REPLY_TEXT}, format="json")
    monkeypatch.setattr(api, "json_answer", _drf_answer)
    drf = client.post(url.format(second), {"text": _REPLY_TEXT}, format="json")

    assert type(fast) is not Response  # the fast path answered
    assert type(drf) is Response
    fast_status, fast_content, fast_headers = _answer(fast)
    drf_status, drf_content, drf_headers = _answer(drf)
    assert (fast_status, drf_status) == (201, 201)
    # The two messages' ids and times may differ in length (ids cross 9 -> 10
    # when earlier tests ran), so each length is held to its own content.
    assert fast["Content-Length"] == str(len(fast_content))
    assert drf["Content-Length"] == str(len(drf_content))
    assert _without_length(fast_headers) == _without_length(drf_headers)
    fast_body, drf_body = fast.json(), drf.json()
    # The same answer but for the message's own id, conversation and times.
    assert fast_body["text"] == drf_body["text"] == _REPLY_TEXT
    assert b"\\u2028" in fast_content
    assert "\u2028".encode() not in fast_content
    own = {"id", "conversation_id", "created_at", "scheduled_for"}
    assert {k: v for k, v in fast_body.items() if k not in own} == {
        k: v for k, v in drf_body.items() if k not in own
    }
    # Written as DRF writes the body it parses back to.
    assert fast_content == _rendered(fast_body)
    assert drf_content == _rendered(drf_body)


@pytest.mark.django_db(transaction=True)
def test_a_reply_with_an_indent_still_gets_drfs_response(
    tenant: Tenant, owner: User
) -> None:
    channel = open_api_channel(tenant, owner)
    client = token_client(tenant, owner, "admin")
    conversation = push(client, tenant, channel, 0).json()["conversation_id"]

    response = client.post(
        f"{base(tenant)}/conversations/{conversation}/messages/",
        {"text": "On it."},
        format="json",
        HTTP_ACCEPT="application/json; indent=2",
    )

    assert response.status_code == 201
    assert type(response) is Response
    assert response.content.startswith(b'{\n  "id": ')
