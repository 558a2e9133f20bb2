"""/readyz: the database, Redis and the broker, each with a short timeout; 503
naming what failed; never a 500; not tenant-scoped. /healthz stays liveness."""

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client, override_settings

from helpdesk.observability import readiness
from tenants.models import Tenant, User

pytestmark = pytest.mark.django_db

AMQP = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture(autouse=True)
def _fresh_answer() -> Iterator[None]:
    readiness.forget_cached()
    yield
    readiness.forget_cached()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ready() -> Any:
    return Client().get("/readyz")


def statuses(response: Any) -> dict[str, str]:
    return {name: check["status"] for name, check in response.json()["checks"].items()}


def test_all_up_is_200_with_each_check() -> None:
    response = ready()

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    assert response.json()["status"] == "ready"
    assert response.json()["ready"] is True
    assert statuses(response) == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_rabbitmq_broker_up_is_ok() -> None:
    with override_settings(CELERY_BROKER_URL=AMQP):
        response = ready()

    assert response.status_code == 200
    assert statuses(response)["broker"] == "ok"


def test_redis_down_is_503_naming_it() -> None:
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = ready()

    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert response.json()["checks"]["redis"] == {
        "status": "failed",
        "error": "ConnectionError",
    }
    assert statuses(response) == {
        "database": "ok",
        "redis": "failed",
        "broker": "ok",
    }


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_broker_down_is_503_naming_it(scheme: str) -> None:
    url = f"{scheme}://guest:secret-password@127.0.0.1:{closed_port()}//"
    with override_settings(CELERY_BROKER_URL=url):
        response = ready()

    assert response.status_code == 503
    assert statuses(response) == {"database": "ok", "redis": "ok", "broker": "failed"}
    assert "secret-password" not in response.content.decode()


def test_database_down_is_503_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    config = dict(connections.settings[DEFAULT_DB_ALIAS])
    config["PORT"] = str(closed_port())
    monkeypatch.setitem(connections.settings, DEFAULT_DB_ALIAS, config)

    response = ready()

    assert response.status_code == 503
    assert statuses(response) == {"database": "failed", "redis": "ok", "broker": "ok"}
    assert response.json()["checks"]["database"]["error"] == "OperationalError"


def test_the_demo_reports_what_it_does_not_use() -> None:
    with override_settings(REDIS_URL="", CELERY_BROKER_URL="memory://"):
        response = ready()

    assert response.status_code == 200
    assert statuses(response) == {
        "database": "ok",
        "redis": "not used",
        "broker": "not used",
    }


def test_a_check_that_hangs_is_a_timeout_not_a_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def hangs() -> str:
        release.wait(30)
        return readiness.OK

    monkeypatch.setattr(readiness, "TOTAL_TIMEOUT", 0.2)
    monkeypatch.setitem(readiness.CHECKS, "redis", hangs)
    try:
        response = ready()
    finally:
        release.set()

    assert response.status_code == 503
    assert statuses(response)["redis"] == "timeout"


def test_a_check_that_raises_anything_is_a_503_not_a_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> str:
        raise KeyError("surprise")

    monkeypatch.setitem(readiness.CHECKS, "broker", broken)

    response = ready()

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == {
        "status": "failed",
        "error": "KeyError",
    }


def test_answers_are_shared_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counted() -> str:
        calls.append(1)
        return readiness.OK

    monkeypatch.setitem(readiness.CHECKS, "database", counted)
    monkeypatch.setattr(readiness, "CACHE_SECONDS", 60.0)

    assert ready().status_code == 200
    assert ready().status_code == 200
    assert calls == [1]


def test_readiness_and_liveness_are_not_tenant_scoped(
    tenant: Tenant, outsider: User
) -> None:
    client = Client()
    client.force_login(outsider)

    response = client.get("/readyz")
    health = client.get("/healthz")

    assert response.status_code == 200
    assert tenant.slug not in response.content.decode()
    assert set(response.json()) == {"status", "ready", "checks"}
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


def test_healthz_stays_liveness_when_dependencies_are_down() -> None:
    with override_settings(
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0",
    ):
        health = Client().get("/healthz")
        readyz = ready()

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert readyz.status_code == 503
