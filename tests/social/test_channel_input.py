"""social.channel_api.plain_message_input: the API channel's push validated
without the serializer when it is plainly valid, with the serializer's result;
anything else is left to the serializer (None), so every error is its own.
plain_json_body: a plain JSON body read by orjson as DRF's parser reads it;
anything else is left to DRF (None)."""

import json
from typing import Any

import pytest
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from helpdesk.api_output import validated_input
from social.channel_api import (
    ChannelMessageCreateApi,
    plain_json_body,
    plain_message_input,
)

AUTHOR = {"id": "cust-1", "handle": "@jo", "name": "Jo", "followers": 12}
PUSH = {"external_id": "m-1", "text": "Where is my order?", "author": AUTHOR}


def _serializer(data: Any) -> Any:
    return validated_input(ChannelMessageCreateApi.ChannelMessageInput, data)


PLAIN = [
    PUSH,
    {"external_id": "m-1", "text": "hi", "author": {"id": "a"}},
    {**PUSH, "visibility": "public", "thread_id": "t-9"},
    {**PUSH, "visibility": "private", "thread_id": ""},
    {**PUSH, "external_id": "  padded  ", "text": "\n text \t"},
    {**PUSH, "text": "ünïcode 🚀 " + "x" * 9_988, "external_id": "e" * 128},
    {**PUSH, "author": {**AUTHOR, "handle": "  ", "name": "n" * 200}},
    {**PUSH, "author": {**AUTHOR, "followers": 2_000_000_000, "extra": [1]}},
    {**PUSH, "author": {"id": "  a  ", "followers": 0}},
    {**PUSH, "created_at": None, "url": ""},
    {**PUSH, "unknown": {"ignored": True}},
]


@pytest.mark.parametrize("data", PLAIN)
def test_a_plain_push_is_what_the_serializer_gives(data: dict[str, Any]) -> None:
    plain = plain_message_input(data)

    assert plain == _serializer(data)
    assert plain is not None


LEFT = [
    [PUSH],
    {**PUSH, "external_id": ""},
    {**PUSH, "external_id": "   "},
    {**PUSH, "external_id": "e" * 129},
    {**PUSH, "external_id": 12},
    {**PUSH, "external_id": None},
    {**PUSH, "text": "x" * 10_001},
    {**PUSH, "text": "nul \x00 inside"},
    {**PUSH, "text": "lone \ud800 surrogate"},
    {k: v for k, v in PUSH.items() if k != "text"},
    {**PUSH, "author": "cust-1"},
    {**PUSH, "author": {"handle": "@jo"}},
    {**PUSH, "author": {**AUTHOR, "followers": True}},
    {**PUSH, "author": {**AUTHOR, "followers": "12"}},
    {**PUSH, "author": {**AUTHOR, "followers": -1}},
    {**PUSH, "author": {**AUTHOR, "followers": 2_000_000_001}},
    {**PUSH, "author": {**AUTHOR, "name": "n" * 201}},
    {**PUSH, "author": {**AUTHOR, "handle": None}},
    {**PUSH, "visibility": "secret"},
    {**PUSH, "visibility": ""},
    {**PUSH, "thread_id": "t" * 129},
    {**PUSH, "created_at": "2026-12-06T08:00:00Z"},
    {**PUSH, "url": "https://example.com/post/1"},
]


@pytest.mark.parametrize("data", LEFT)
def test_anything_else_is_left_to_the_serializer(data: Any) -> None:
    assert plain_message_input(data) is None


def test_what_is_left_includes_every_refused_push() -> None:
    refused = []
    for data in LEFT:
        try:
            _serializer(data)
        except ValidationError:
            refused.append(data)

    assert len(refused) == 19  # a number id, "12" followers, a time and a url pass
    assert all(plain_message_input(data) is None for data in refused)


def _request(body: bytes, content_type: str) -> Request:
    factory = APIRequestFactory()
    return Request(
        factory.post("/", body, content_type=content_type),
        parsers=[JSONParser(), FormParser()],
    )


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(PUSH).encode(),
        json.dumps(PLAIN[5], ensure_ascii=False).encode(),
        b' {"a": 1, "a": [2, {"b": null}]} \n',
        b"[1, 2.5]",
    ],
)
def test_a_plain_json_body_is_what_drf_parses(body: bytes) -> None:
    plain = plain_json_body(_request(body, "application/json"))

    assert plain == _request(body, "application/json").data


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps(PUSH).encode(), "application/json; charset=utf-8"),
        (json.dumps(PUSH).encode("latin-1"), "application/json; charset=latin-1"),
        (b"external_id=m-1&text=hi", "application/x-www-form-urlencoded"),
        (b'{"a": NaN}', "application/json"),
        (b'{"a": "\\ud800"}', "application/json"),  # DRF reads a lone surrogate
        (b"\xef\xbb\xbf{}", "application/json"),
        (b'{"a": 1', "application/json"),
        (b"", "application/json"),
    ],
)
def test_anything_else_is_left_to_drf(body: bytes, content_type: str) -> None:
    assert plain_json_body(_request(body, content_type)) is None


@pytest.mark.parametrize("followers", ["18446744073709551616", "2000000000.0", "1e3"])
def test_a_number_read_otherwise_is_no_plain_push(followers: str) -> None:
    """orjson reads an integer past 64 bits as a float (DRF: an int); a float
    is no plain push, so the serializer judges either."""
    body = json.dumps(PUSH).replace('"followers": 12', f'"followers": {followers}')
    request = _request(body.encode(), "application/json")

    assert type(plain_json_body(request)["author"]["followers"]) is float
    assert plain_message_input(plain_json_body(request)) is None


def test_an_ignored_field_read_otherwise_leaves_the_same_push() -> None:
    body = json.dumps({**PUSH, "extra": 2**70 + 1}).encode()
    drf: Any = _request(body, "application/json").data

    plain = plain_json_body(_request(body, "application/json"))

    assert plain["extra"] != drf["extra"]
    assert plain_message_input(plain) == _serializer(drf)


def test_a_body_read_as_a_stream_is_left_to_drf() -> None:
    request = _request(json.dumps(PUSH).encode(), "application/json")
    request._request.read()

    assert plain_json_body(request) is None
