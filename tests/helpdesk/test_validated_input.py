"""helpdesk.api_output.validated_input: what is_valid(raise_exception=True) gives."""

from typing import Any

import pytest
from rest_framework.exceptions import ValidationError

from helpdesk.api_output import validated_input
from social.channel_api import ChannelMessageCreateApi

Input = ChannelMessageCreateApi.ChannelMessageInput

PAYLOADS: list[Any] = [
    {"external_id": "m1", "text": "Hello", "author": {"id": "a1"}},
    {
        "external_id": "m2",
        "text": "Hi",
        "author": {"id": "a2", "handle": "@a", "name": "A", "followers": 12},
        "visibility": "public",
        "thread_id": "t",
        "created_at": "2026-12-01T10:00:00Z",
        "url": "https://example.com/p/1",
    },
    {},
    None,
    [],
    "text",
    {"external_id": "m3", "text": "", "author": {"id": ""}},
    {"external_id": "m4", "text": "x", "author": {"followers": -1}},
    {"external_id": "m5", "text": "x", "author": "someone"},
    {"external_id": "m6", "text": "x", "author": {"id": "a"}, "visibility": "loud"},
    {"external_id": "x" * 200, "text": "x", "author": {"id": "a"}, "url": "no"},
]


def _drf(data: Any) -> tuple[str, Any]:
    serializer = Input(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except ValidationError as error:
        return "error", error.detail
    return "ok", serializer.validated_data


def _ours(data: Any) -> tuple[str, Any]:
    try:
        return "ok", validated_input(Input, data)
    except ValidationError as error:
        return "error", error.detail


@pytest.mark.parametrize("data", PAYLOADS)
def test_the_same_data_or_the_same_errors(data: Any) -> None:
    expected = _drf(data)
    for _ in range(2):  # the second call reuses the thread's serializer
        assert _ours(data) == expected


def test_an_error_does_not_stay_for_the_next_call() -> None:
    assert _ours({})[0] == "error"
    assert _ours(PAYLOADS[0]) == _drf(PAYLOADS[0])
