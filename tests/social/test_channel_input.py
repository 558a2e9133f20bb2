"""social.channel_api.plain_message_input: the API channel's push validated
without the serializer when it is plainly valid, with the serializer's result;
anything else is left to the serializer (None), so every error is its own."""

from typing import Any

import pytest
from rest_framework.exceptions import ValidationError

from helpdesk.api_output import validated_input
from social.channel_api import ChannelMessageCreateApi, plain_message_input

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
