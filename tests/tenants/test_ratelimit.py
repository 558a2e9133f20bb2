"""The one rate limiter (tenants/ratelimit.py): its two windows count exactly, and
both fail open with a warning when Redis cannot be reached."""

import hashlib
import logging
import os
import uuid
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

from tenants import ratelimit, resp
from tenants.ratelimit import SlidingVerdict, fixed_window_wait, sliding_window
from tenants.resp import PlainRedis, ScriptCall

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
DEAD_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": DEAD_REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MINUTE_START = 6_000_000.0  # a multiple of 60: a window starts here


@pytest.fixture
def locmem(settings: Any) -> None:
    settings.CACHES = LOCMEM
    cache.clear()


def messages(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


# --- fixed window ---------------------------------------------------------------


@pytest.mark.usefixtures("locmem")
def test_a_fixed_window_allows_exactly_the_limit_then_says_when_it_ends() -> None:
    at = MINUTE_START + 45
    waits = [fixed_window_wait("s", "tok", limit=3, now=at) for _ in range(5)]

    assert waits == [None, None, None, 15, 15]
    # The next window starts afresh; other callers and scopes count apart.
    assert fixed_window_wait("s", "tok", limit=3, now=MINUTE_START + 60) is None
    assert fixed_window_wait("s", "other", limit=3, now=at) is None
    assert fixed_window_wait("t", "tok", limit=3, now=at) is None


@pytest.mark.usefixtures("locmem")
def test_windows_of_other_lengths_align_to_their_own_length() -> None:
    at = MINUTE_START + 290  # 10 s before a five-minute window ends
    waits = [fixed_window_wait("s", "a", limit=1, window=300, now=at) for _ in range(2)]

    assert waits == [None, 10]
    assert fixed_window_wait("s", "a", limit=1, window=300, now=at + 10) is None


@pytest.mark.usefixtures("locmem")
def test_a_counter_that_vanishes_once_is_counted_afresh(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_incr = LocMemCache.incr
    failures = iter([True])

    def incr(self: LocMemCache, key: str, delta: int = 1, version: Any = None) -> int:
        if next(failures, False):
            self.delete(key)  # evicted between add and incr
            raise ValueError(f"Key '{key}' not found")
        return int(real_incr(self, key, delta, version))

    monkeypatch.setattr(LocMemCache, "incr", incr)
    at = MINUTE_START
    with caplog.at_level(logging.WARNING, logger="tenants.ratelimit"):
        waits = [fixed_window_wait("s", "v", limit=1, now=at) for _ in range(2)]

    assert waits == [None, 60]
    assert messages(caplog, "tenants.ratelimit") == []


@pytest.mark.usefixtures("locmem")
def test_a_counter_that_keeps_vanishing_fails_open_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def incr(self: LocMemCache, key: str, delta: int = 1, version: Any = None) -> int:
        raise ValueError(f"Key '{key}' not found")

    monkeypatch.setattr(LocMemCache, "incr", incr)
    with caplog.at_level(logging.WARNING, logger="tenants.ratelimit"):
        wait = fixed_window_wait("s", "v", limit=0, now=MINUTE_START)

    assert wait is None
    assert messages(caplog, "tenants.ratelimit") == [
        "s rate limit not applied, its counter vanished"
    ]


def test_a_fixed_window_fails_open_with_a_warning_when_redis_is_down(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = DEAD_CACHE
    with caplog.at_level(logging.WARNING, logger="tenants.ratelimit"):
        wait = fixed_window_wait("s", "x", limit=0, now=MINUTE_START)

    assert wait is None
    (line,) = messages(caplog, "tenants.ratelimit")
    assert line.startswith("s rate limit not applied, cache unavailable: ")


# --- sliding window -------------------------------------------------------------


class Spy:
    """A redis client that counts round trips: scripts run (by hash or sent
    whole), other calls."""

    def __init__(self, inner: redis.Redis, *, knows_script: bool = True) -> None:
        self.inner = inner
        self.knows_script = knows_script
        self.round_trips: list[str] = []

    def evalsha(self, *args: Any) -> Any:
        self.round_trips.append("evalsha")
        if not self.knows_script:
            raise redis.exceptions.NoScriptError("NOSCRIPT No matching script.")
        return self.inner.evalsha(*args)

    def eval(self, *args: Any) -> Any:
        self.round_trips.append("eval")
        self.knows_script = True
        return self.inner.eval(*args)

    def pipeline(self) -> Any:
        self.round_trips.append("pipeline")
        return self.inner.pipeline()

    def zrem(self, *args: Any) -> Any:
        self.round_trips.append("zrem")
        return self.inner.zrem(*args)


@pytest.fixture
def spy() -> Spy:
    return Spy(redis.Redis.from_url(REDIS_URL))


def hit(spy: Spy, key: str, at: float, limit: int = 3) -> SlidingVerdict:
    return sliding_window(
        spy, key, limit=limit, window=60, now=MINUTE_START + at, label="Test"
    )


def test_a_sliding_window_allows_exactly_the_limit_in_any_window(spy: Spy) -> None:
    key = f"test-rl:{uuid.uuid4().hex}"
    verdicts = [hit(spy, key, at).allowed for at in (0, 10, 20, 30, 45)]
    refused = hit(spy, key, 59.9)

    assert verdicts == [True, True, True, False, False]
    assert refused == SlidingVerdict(allowed=False, counted=3, oldest=MINUTE_START + 0)
    # At 60 s the first request leaves the window (DRF's rule: older than or
    # exactly `window` seconds); refused requests were never counted.
    assert hit(spy, key, 60).allowed
    assert not hit(spy, key, 65).allowed
    assert hit(spy, key, 70).allowed
    spy.inner.delete(key)


def test_an_allowed_request_and_a_refused_one_cost_one_round_trip_each(
    spy: Spy,
) -> None:
    key = f"test-rl:{uuid.uuid4().hex}"
    hit(spy, key, 0, limit=1)
    allowed_trips = list(spy.round_trips)
    refused = hit(spy, key, 1, limit=1)

    assert allowed_trips == ["evalsha"]
    assert spy.round_trips == ["evalsha", "evalsha"]
    assert refused == SlidingVerdict(allowed=False, counted=1, oldest=MINUTE_START)
    # Only the allowed request stays counted.
    kept: Any = spy.inner.zrange(key, 0, -1, withscores=True)
    ((member, score),) = kept
    assert member.startswith(f"{MINUTE_START!r}:{os.getpid()}:".encode())
    assert score == MINUTE_START
    assert 0 < spy.inner.ttl(key) <= 60
    spy.inner.delete(key)


def test_a_redis_that_does_not_know_the_script_is_sent_it_once() -> None:
    spy = Spy(redis.Redis.from_url(REDIS_URL), knows_script=False)
    key = f"test-rl:{uuid.uuid4().hex}"
    first = hit(spy, key, 0, limit=1)
    second = hit(spy, key, 1, limit=1)

    assert first == ratelimit.ALLOWED
    assert second == SlidingVerdict(allowed=False, counted=1, oldest=MINUTE_START)
    assert spy.round_trips == ["evalsha", "eval", "evalsha"]
    assert spy.inner.zcard(key) == 1
    spy.inner.delete(key)


def test_a_limit_of_zero_refuses_with_the_refused_request_as_oldest(spy: Spy) -> None:
    key = f"test-rl:{uuid.uuid4().hex}"
    refused = hit(spy, key, 5, limit=0)

    assert refused == SlidingVerdict(allowed=False, counted=0, oldest=MINUTE_START + 5)
    assert spy.inner.exists(key) == 0
    assert spy.round_trips == ["evalsha"]


def test_a_sliding_window_fails_open_with_a_warning_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = redis.Redis.from_url(
        DEAD_REDIS_URL, socket_connect_timeout=0.2, socket_timeout=0.2
    )
    log = logging.getLogger("tests.ratelimit.caller")
    with caplog.at_level(logging.WARNING, logger="tests.ratelimit.caller"):
        verdict = sliding_window(
            dead, "k", limit=0, window=60, now=MINUTE_START, label="API", log=log
        )

    assert verdict == ratelimit.ALLOWED
    (line,) = messages(caplog, "tests.ratelimit.caller")
    assert line.startswith("API rate limit not applied, cache unavailable: ")


# --- sliding window over tenants.resp's plain socket -----------------------------


@pytest.fixture
def plain_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands sent over plain sockets (tenants.resp), by name."""
    names: list[str] = []
    real = PlainRedis._send

    def send(self: PlainRedis, command: bytes) -> None:
        names.append(command.split(b"\r\n")[2].decode())
        real(self, command)

    monkeypatch.setattr(PlainRedis, "_send", send)
    return names


def test_a_redis_py_client_on_a_plain_pool_counts_over_the_plain_socket(
    plain_trips: list[str],
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    key = f"test-rl:{uuid.uuid4().hex}"
    sliding_window(client, f"{key}:w", limit=1, window=60, now=0.0, label="T")
    client.delete(f"{key}:w")
    plain_trips.clear()  # the script is known from here on

    def at(offset: float, limit: int = 3) -> SlidingVerdict:
        return sliding_window(
            client, key, limit=limit, window=60, now=MINUTE_START + offset, label="T"
        )

    verdicts = [at(offset).allowed for offset in (0, 10, 20, 30, 45)]
    refused = at(59.9)

    assert verdicts == [True, True, True, False, False]
    assert refused == SlidingVerdict(allowed=False, counted=3, oldest=MINUTE_START)
    assert at(60).allowed
    assert not at(65).allowed
    assert at(70).allowed
    # 10 left at 70; a refused request reads the oldest and is taken back.
    assert at(75, limit=0) == SlidingVerdict(
        allowed=False, counted=3, oldest=MINUTE_START + 20
    )
    assert plain_trips == ["EVALSHA"] * 10  # one round trip each
    kept: Any = client.zrange(key, 0, -1, withscores=True)
    assert [score - MINUTE_START for _, score in kept] == [20, 60, 70]
    client.delete(key)


def test_the_plain_socket_sends_an_unknown_script_once(
    plain_trips: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = f"{ratelimit._SLIDING_LUA}-- {uuid.uuid4().hex}\n"
    monkeypatch.setattr(ratelimit, "_SLIDING_LUA", script)
    monkeypatch.setattr(
        ratelimit,
        "_SLIDING_SHA",
        hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest(),
    )
    client = redis.Redis.from_url(REDIS_URL)
    key = f"test-rl:{uuid.uuid4().hex}"
    first = sliding_window(client, key, limit=1, window=60, now=MINUTE_START, label="T")
    second = sliding_window(
        client, key, limit=1, window=60, now=MINUTE_START + 1, label="T"
    )

    assert first == ratelimit.ALLOWED
    assert second == SlidingVerdict(allowed=False, counted=1, oldest=MINUTE_START)
    assert plain_trips == ["EVALSHA", "EVAL", "EVALSHA"]
    assert client.zcard(key) == 1
    client.delete(key)


def test_a_script_sent_along_shares_the_round_trip_and_gets_its_reply(
    plain_trips: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own script (unknown to this Redis: sent whole after NOSCRIPT), in the
    window's round trip; an error reply of it leaves the verdict alone."""
    script = f"return {{KEYS[1], ARGV[1]}} -- {uuid.uuid4().hex}\n"
    sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    client = redis.Redis.from_url(REDIS_URL)
    key = f"test-rl:{uuid.uuid4().hex}"
    sliding_window(client, key, limit=1, window=60, now=MINUTE_START, label="T")
    answers: list[Any] = []
    plain_trips.clear()

    def along(script: str, sha: str) -> ScriptCall:
        return ScriptCall(sha, script, 1, ("k", "v"), answers.append)

    refused = sliding_window(
        client,
        key,
        limit=1,
        window=60,
        now=MINUTE_START + 1,
        label="T",
        also=along(script, sha),
    )
    assert refused == SlidingVerdict(allowed=False, counted=1, oldest=MINUTE_START)
    assert answers == [[b"k", b"v"]]
    # One write for both, then the unknown script whole; then both known.
    assert plain_trips == ["EVALSHA", "EVAL"]
    plain_trips.clear()
    allowed = sliding_window(
        client,
        key,
        limit=1,
        window=60,
        now=MINUTE_START + 61,
        label="T",
        also=along(script, sha),
    )
    assert allowed == ratelimit.ALLOWED
    assert answers[1] == [b"k", b"v"]
    assert plain_trips == ["EVALSHA"]
    broken = "return redis.call('NOSUCHCOMMAND')"
    sliding_window(
        client,
        key,
        limit=5,
        window=60,
        now=MINUTE_START + 62,
        label="T",
        also=along(
            broken, hashlib.sha1(broken.encode(), usedforsecurity=False).hexdigest()
        ),
    )
    assert isinstance(answers[2], redis.exceptions.ResponseError)
    assert client.zcard(key) == 2  # 61 and 62 counted, nothing else
    client.delete(key)


@pytest.mark.parametrize("plain", [True, False])
def test_redis_away_fails_open_and_the_script_sent_along_gets_the_error(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, plain: bool
) -> None:
    client = redis.Redis.from_url(
        DEAD_REDIS_URL, socket_connect_timeout=0.2, socket_timeout=0.2
    )
    if not plain:  # run_scripts through redis-py, one script after the other
        monkeypatch.setattr(resp, "plain_client", lambda client: None)
    answers: list[Any] = []
    with caplog.at_level(logging.WARNING):
        verdict = sliding_window(
            client,
            "k",
            limit=1,
            window=60,
            now=MINUTE_START,
            label="T",
            also=ScriptCall("0" * 40, "return 1", 0, (), answers.append),
        )
    assert verdict == ratelimit.ALLOWED
    assert len(answers) == 1
    assert isinstance(answers[0], redis.exceptions.ConnectionError)
    assert messages(caplog, "tenants.ratelimit")[0].startswith(
        "T rate limit not applied, cache unavailable:"
    )
