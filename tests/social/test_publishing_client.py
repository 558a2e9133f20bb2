"""The webhook group tasks (social.publishing.publish_events) go out through the
Redis channel's one kept client, as the post-commit enqueue does
(tenants.tasks._keep_redis_client): kombu built a redis client, with its table
of reply callbacks, for every message before (about 100 us of the publisher's CPU
per message)."""

import base64
import json
from collections.abc import Iterator

import pytest
import redis

from helpdesk.celery import app as celery_app
from social.publishing import publish_events
from tests.helpdesk.live import count_redis_clients, empty_scratch_broker


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """A real Redis broker (this process's scratch database), empty."""
    with empty_scratch_broker() as client:
        yield client


def test_group_tasks_are_published_through_one_kept_client(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_events(celery_app, [1, 2])
    made = count_redis_clients(monkeypatch)
    for ids in ([3], [4, 5, 6], [7]):
        publish_events(celery_app, ids)

    assert made == []
    bodies = [
        json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
        for raw in reversed(broker.lrange("inbound", 0, -1))
    ]
    assert bodies == [[1, 2], [3], [4, 5, 6], [7]]
