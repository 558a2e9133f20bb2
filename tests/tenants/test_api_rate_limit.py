"""The API rate limit: DRF's sliding window, kept in Redis as a sorted set.

Each request costs one round trip (a pipeline); a refused request is not counted.
The clock is the throttle's own `timer`, replaced here by a fixed sequence.
"""

import uuid
from typing import Any

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from tenants.api_auth import ApiRateThrottle
from tenants.models import Tenant, User
from tenants.ratelimit import redis_client as _redis_client
from tests.api_clients import base, session, token_client

pytestmark = pytest.mark.django_db


RUN = uuid.uuid4().hex
CACHE_FORMAT = f"throttle_%(scope)s_{RUN}_%(ident)s"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock()
    monkeypatch.setattr(ApiRateThrottle, "THROTTLE_RATES", {"api": "3/min"})
    monkeypatch.setattr(ApiRateThrottle, "timer", fixed)
    # Other test processes may share this Redis database: windows of our own.
    monkeypatch.setattr(ApiRateThrottle, "cache_format", CACHE_FORMAT)
    return fixed


def ping(client: APIClient, tenant: Tenant, clock: Clock, at: float) -> int:
    clock.now = 1_000_000.0 + at
    response = client.get(f"{base(tenant)}/ping/")
    return int(response.status_code)


def test_the_window_slides(tenant: Tenant, owner: User, clock: Clock) -> None:
    client = token_client(tenant, owner, "read")

    codes = [ping(client, tenant, clock, at) for at in (0, 10, 20, 30, 45)]
    after_the_first_left = ping(client, tenant, clock, 60.5)
    still_full = ping(client, tenant, clock, 61)
    after_the_second_left = ping(client, tenant, clock, 70.5)

    assert codes == [200, 200, 200, 429, 429]
    assert after_the_first_left == 200
    assert still_full == 429
    assert after_the_second_left == 200


def test_a_refused_request_says_when_to_come_back(
    tenant: Tenant, owner: User, clock: Clock
) -> None:
    client = token_client(tenant, owner, "read")
    for at in (0, 10, 20):
        assert ping(client, tenant, clock, at) == 200

    clock.now = 1_000_000.0 + 35
    refused = client.get(f"{base(tenant)}/ping/")

    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    # The oldest of the three leaves the window 25 s later.
    assert refused["Retry-After"] == "25"


def test_refused_requests_are_not_counted(
    tenant: Tenant, owner: User, clock: Clock
) -> None:
    client = token_client(tenant, owner, "read")
    for at in (0, 1, 2):
        assert ping(client, tenant, clock, at) == 200
    for at in (3, 4, 5, 6):
        assert ping(client, tenant, clock, at) == 429

    redis: Any = _redis_client(caches["default"])
    keys = redis.keys(f"*{RUN}*")
    assert len(keys) == 1
    assert keys[0].endswith(b":window")
    assert redis.zcard(keys[0]) == 3


def test_tokens_and_sessions_have_windows_of_their_own(
    tenant: Tenant, owner: User, agent: User, clock: Clock
) -> None:
    owner_token = token_client(tenant, owner, "read")
    agent_token = token_client(tenant, agent, "read")
    for at in (0, 1, 2):
        assert ping(owner_token, tenant, clock, at) == 200

    assert ping(owner_token, tenant, clock, 3) == 429
    assert ping(agent_token, tenant, clock, 3) == 200
    assert ping(session(owner), tenant, clock, 3) == 200
