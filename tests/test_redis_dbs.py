"""The Redis databases of a test process (tests/redis_dbs.py) on a 64-database Redis."""

import pytest

from tests import redis_dbs


def roles_of(monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, str]:
    monkeypatch.delenv("EARSHOT_TEST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    for name in redis_dbs.ENV_OVERRIDES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EARSHOT_TEST_REDIS_URL", url)
    return {role: redis_dbs.redis_url(role) for role in redis_dbs.OFFSETS}


def test_the_roles_follow_a_redis_url_database_at_fixed_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert roles_of(monkeypatch, "redis://127.0.0.1:6380/17") == {
        "cache": "redis://127.0.0.1:6380/17",
        "live_broker": "redis://127.0.0.1:6380/37",
        "browser_broker": "redis://127.0.0.1:6380/57",
        "browser_layer": "redis://127.0.0.1:6380/58",
        "scratch": "redis://127.0.0.1:6380/63",
    }


@pytest.mark.parametrize("database", [18, 40, 63])
def test_a_database_without_room_for_the_offsets_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, database: int
) -> None:
    with pytest.raises(pytest.UsageError) as raised:
        roles_of(monkeypatch, f"redis://127.0.0.1:6380/{database}")
    assert str(raised.value) == (
        f"REDIS_URL names database {database}: the test roles sit at offsets up to "
        "+46 on a Redis of 64 databases, so its database must be 0 to 17 "
        "(e.g. redis://127.0.0.1:6380/8)"
    )


def test_the_default_redis_keeps_the_worker_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert roles_of(monkeypatch, "redis://127.0.0.1:6379/3")["scratch"] == (
        "redis://127.0.0.1:6379/9"
    )
