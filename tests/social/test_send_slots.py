"""A delivery batch takes its send-limit slots per account at once
(social.sending.take_slots, tenants.ratelimit.fixed_window_take): never more than
the limit in a window, shared with the one-by-one counter, and the calls left over
wait for the next window as before."""

import time
from typing import Any

import pytest
from django.core.cache import cache

from social import sending
from social.connectors.base import AccountRef, SendLimit
from tenants.ratelimit import fixed_window_take, fixed_window_wait

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MINUTE_START = 6_000_000.0


@pytest.fixture(autouse=True)
def locmem(settings: Any) -> None:
    settings.CACHES = LOCMEM
    cache.clear()


def test_a_bulk_take_counts_like_as_many_single_requests() -> None:
    at = MINUTE_START + 10
    assert fixed_window_take("s", "tok", count=2, limit=5, now=at) == 2
    assert fixed_window_take("s", "tok", count=4, limit=5, now=at) == 3
    assert fixed_window_take("s", "tok", count=1, limit=5, now=at) == 0
    # The one-by-one counter is the same one: the window is used up.
    assert fixed_window_wait("s", "tok", limit=5, now=at) == 50
    assert fixed_window_take("s", "tok", count=3, limit=5, now=MINUTE_START + 60) == 3
    assert fixed_window_take("s", "tok", count=0, limit=5, now=at) == 0


def ref(external_id: str) -> AccountRef:
    return AccountRef(
        platform="sandbox",
        external_id=external_id,
        handle=external_id,
        base_url="",
        credentials={},
    )


def calls(limit: SendLimit) -> list[sending.Call[str]]:
    a, b = ref("slots-a"), ref("slots-b")
    return [
        sending.Call(account, lambda: "ok", limit) for account in (a, a, b, a, a, a, b)
    ]


def test_a_batch_takes_at_most_each_accounts_limit_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time", lambda: MINUTE_START + 10)
    limit = SendLimit(3, 60, "api")

    assert sending.take_slots(calls(limit)) == {0, 1, 2, 3, 6}
    # Account a's window is used up for every later call, b has one slot left.
    assert sending.take_slots(calls(limit)) == {2}


def test_no_bulk_take_near_the_end_of_a_window_or_for_short_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time", lambda: MINUTE_START + 56)
    assert sending.take_slots(calls(SendLimit(3, 60, "api"))) == set()
    monkeypatch.setattr(time, "time", lambda: MINUTE_START + 10)
    assert sending.take_slots(calls(SendLimit(3, 1, "api"))) == set()
    # Nothing was counted: the calls take their slots one by one.
    assert (
        fixed_window_take(
            "platform-send",
            sending.limit_key(ref("slots-a"), SendLimit(3, 60, "api")),
            count=3,
            limit=3,
            window=60,
        )
        == 3
    )
