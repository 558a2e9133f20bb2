"""/metrics: who may read it, what the hooks count, queue depths from the broker,
and the sum over processes in multiprocess mode. Counters are process-wide, so each
test compares a sample before and after what it does."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from kombu import Connection
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from helpdesk import metrics
from helpdesk.models import Message
from helpdesk.observability.asgi import WebhookAckMetrics
from helpdesk.services.breaches import sweep_sla_clocks
from helpdesk.services.replies import post_reply
from helpdesk.services.webhook_outbox import queue_webhook_deliveries
from helpdesk.webhooks.transport import PostOutcome
from social.connectors.base import ConnectorError
from social.models import SocialAccount
from social.webhook_asgi import WebhookFastPath
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import DeliveryQueue, item, member, receive
from tests.helpdesk.fakes import FakeConnector
from tests.helpdesk.live import open_socket, session_headers
from tests.helpdesk.sla_support import T0, make_clocked
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    Receiver,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    loopback_hooks_fixture,
    run_delivery,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-" + "m" * 24
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Client, **extra: Any) -> Any:
    return client.get("/metrics", **extra)


def families(body: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- who may read it ----------------------------------------------------------------


@override_settings(METRICS_TOKEN=TOKEN)
def test_with_a_token_only_that_bearer_token_reads_metrics(
    tenant: Tenant, owner: User
) -> None:
    with tenant_context(tenant):
        _, member_token = create_api_token(
            membership_of(tenant, owner), name="t", scope="admin"
        )
    client = Client()

    missing = scrape(client)
    wrong = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}x")
    members = scrape(client, HTTP_AUTHORIZATION=f"Bearer {member_token}")
    right = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    for refused in (missing, wrong, members):
        assert refused.status_code == 401
        assert refused["Content-Type"] == "application/json"
        assert refused.json() == {"error": "a valid metrics token is required"}
        assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"earshot_" not in refused.content
    assert right.status_code == 200
    assert right["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "earshot_ingest_items" in families(right.content)


@override_settings(METRICS_TOKEN=TOKEN)
def test_with_a_token_loopback_alone_is_not_enough() -> None:
    response = scrape(Client(), REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 401


def test_without_a_token_only_allowed_addresses_read_metrics() -> None:
    client = Client()

    assert scrape(client, REMOTE_ADDR="127.0.0.1").status_code == 200
    assert scrape(client, REMOTE_ADDR="::1").status_code == 200
    assert scrape(client, REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200
    outside = scrape(client, REMOTE_ADDR="203.0.113.9")
    assert outside.status_code == 403
    assert outside.json() == {"error": "metrics are not served to this address"}
    with override_settings(METRICS_ALLOWED_NETS=["203.0.113.0/24"]):
        assert scrape(client, REMOTE_ADDR="203.0.113.9").status_code == 200
        assert scrape(client, REMOTE_ADDR="127.0.0.1").status_code == 403


def test_metrics_carry_no_tenant_data(
    tenant: Tenant, account: SocialAccount, outsider: User
) -> None:
    receive(account, item(text="My passport number is X1234567", handle="jo.private"))

    body = scrape(Client()).content.decode()

    for secret in (tenant.slug, tenant.name, "X1234567", "jo.private"):
        assert secret not in body
    labels = {
        label
        for family in text_string_to_metric_families(body)
        for each in family.samples
        for label in each.labels
    }
    assert not {"tenant", "tenant_id", "workspace", "user", "brand"} & labels
    # An outsider's session changes nothing: the route is not tenant-scoped.
    client = Client()
    client.force_login(outsider)
    assert scrape(client, REMOTE_ADDR="203.0.113.9").status_code == 403


def test_every_known_series_is_there_at_zero_before_its_first_event() -> None:
    samples = {
        (each.name, tuple(sorted(each.labels.items())))
        for family in text_string_to_metric_families(scrape(Client()).content.decode())
        for each in family.samples
    }

    for platform in (*settings.SOCIAL_PLATFORMS, "other"):
        assert ("earshot_ingest_items_total", (("platform", platform),)) in samples
        for outcome in ("sent", "failed", "retried"):
            labels = (("outcome", outcome), ("platform", platform))
            assert ("earshot_deliveries_total", labels) in samples
    for kind in ("first", "next"):
        assert ("earshot_sla_breaches_total", (("kind", kind),)) in samples
    for reason in metrics.FAILURE_REASONS:
        failure = ("earshot_outbound_webhook_failures_total", (("reason", reason),))
        assert failure in samples
    assert ("earshot_websocket_connections", (("consumer", "inbox"),)) in samples


# --- what the hooks count -----------------------------------------------------------


def test_ingest_counts_new_items_per_platform_not_replays(
    account: SocialAccount,
) -> None:
    before = sample("earshot_ingest_items_total", platform="sandbox")

    receive(account, item(external_id="post-a"))
    receive(account, item(external_id="post-b"))
    receive(account, item(external_id="post-a"))

    assert sample("earshot_ingest_items_total", platform="sandbox") == before + 2


def _queued_reply(tenant: Tenant, agent: User, account: SocialAccount) -> Message:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        reply = post_reply(conversation, membership=member(tenant, agent), text="Hi")
        Message.objects.filter(pk=reply.message.pk).update(send_after=timezone.now())
    return reply.message


def _deliver(message: Message) -> Any:
    from helpdesk import tasks

    conf = tasks.deliver_message.app.conf
    previous, conf.task_eager_propagates = conf.task_eager_propagates, False
    try:
        return tasks.deliver_message.apply(
            args=(message.tenant_id, message.pk), task_id="t-1", throw=False
        ).result
    finally:
        conf.task_eager_propagates = previous


@pytest.mark.parametrize(
    ("errors", "outcome", "result"),
    [
        ([], "sent", "sent"),
        ([ConnectorError("gone", permanent=True, status=403)], "failed", "failed"),
    ],
)
def test_deliveries_are_counted_by_outcome(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    delivery_queue: DeliveryQueue,
    errors: list[ConnectorError],
    outcome: str,
    result: str,
) -> None:
    fake_platforms.behaviour.errors = list(errors)
    message = _queued_reply(tenant, agent, account)
    before = sample("earshot_deliveries_total", platform="sandbox", outcome=outcome)

    assert _deliver(message) == result

    after = sample("earshot_deliveries_total", platform="sandbox", outcome=outcome)
    assert after == before + 1


def test_a_transient_delivery_failure_counts_as_retried(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    delivery_queue: DeliveryQueue,
) -> None:
    fake_platforms.behaviour.errors = [ConnectorError("503 busy")]
    message = _queued_reply(tenant, agent, account)
    retried = sample("earshot_deliveries_total", platform="sandbox", outcome="retried")
    failed = sample("earshot_deliveries_total", platform="sandbox", outcome="failed")

    _deliver(message)

    now = sample("earshot_deliveries_total", platform="sandbox", outcome="retried")
    assert now == retried + 1
    assert (
        sample("earshot_deliveries_total", platform="sandbox", outcome="failed")
        == failed
    )


def test_a_breach_is_counted_once_after_commit(
    tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    make_clocked(tenant, kind="next")
    before = sample("earshot_sla_breaches_total", kind="next")
    due = T0 + timedelta(hours=2)

    with (
        django_capture_on_commit_callbacks(execute=False) as pending,
        tenant_context(tenant),
    ):
        first = sweep_sla_clocks(tenant, now=due)
    counted_before_commit = sample("earshot_sla_breaches_total", kind="next")
    for callback in pending:
        callback()
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        again = sweep_sla_clocks(tenant, now=due)

    assert len(first.breached) == 1
    assert again.breached == []
    assert counted_before_commit == before
    assert sample("earshot_sla_breaches_total", kind="next") == before + 1


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (PostOutcome(ok=False, error="Refused: private address"), "refused"),
        (PostOutcome(ok=False, error="Timed out (ReadTimeout)."), "timeout"),
        (PostOutcome(ok=False, error="Could not connect (ConnectError)."), "connect"),
        (PostOutcome(ok=False, status_code=302, error="HTTP 302"), "redirect"),
        (PostOutcome(ok=False, status_code=410, error="HTTP 410."), "http_4xx"),
        (PostOutcome(ok=False, status_code=502, error="HTTP 502."), "http_5xx"),
        (PostOutcome(ok=False, error="something new"), "other"),
    ],
)
def test_outbound_webhook_failures_are_counted_by_reason(
    outcome: PostOutcome, reason: str
) -> None:
    before = sample("earshot_outbound_webhook_failures_total", reason=reason)

    metrics.count_outbound_webhook_failure(outcome)
    metrics.count_outbound_webhook_failure(PostOutcome(ok=True, status_code=200))

    after = sample("earshot_outbound_webhook_failures_total", reason=reason)
    assert after == before + 1


def test_a_failed_outbound_webhook_is_counted_through_the_delivery_task(
    tenant: Tenant,
    owner: User,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
) -> None:
    receiver = loopback_hooks((503, {}, {"error": "down"}))
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    with tenant_context(tenant):
        (delivery_id,) = queue_webhook_deliveries(tenant.pk, "message.created", {})
    reasons = ("http_5xx", "http_4xx", "timeout", "connect", "refused", "other")
    before = {
        r: sample("earshot_outbound_webhook_failures_total", reason=r) for r in reasons
    }

    assert run_delivery(tenant, delivery_id) == "retry"

    after = {
        r: sample("earshot_outbound_webhook_failures_total", reason=r) for r in reasons
    }
    assert after == {**before, "http_5xx": before["http_5xx"] + 1}


def test_hooks_never_raise_into_the_caller() -> None:
    class Broken:
        @property
        def platform(self) -> str:
            raise RuntimeError("boom")

    metrics.count_deliveries([Broken()], "sent")
    metrics.count_outbound_webhook_failure(object())
    metrics.observe_webhook_ack("x", "not a status", 0.1)  # type: ignore[arg-type]


def _post_hook(platform: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
    sent: list[dict[str, Any]] = []

    async def django(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a webhook POST never reaches Django here")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/hooks/{platform}/",
        "headers": [(b"content-length", str(len(body)).encode()), *headers],
    }
    app = WebhookAckMetrics(WebhookFastPath(django))
    async_to_sync(app)(scope, receive, send)
    return sent[0]


def test_webhook_acks_are_observed_by_platform_and_status() -> None:
    before = sample(
        "earshot_webhook_ack_seconds_count", platform="sandbox", status="401"
    )
    other = sample("earshot_webhook_ack_seconds_count", platform="other", status="404")

    unsigned = _post_hook("instagram", b'{"id": "1"}', [(b"x-request-id", b"abc-1")])
    unknown = _post_hook("no-such-platform-" + "z" * 10, b"{}", [])

    assert unsigned["status"] == 401
    assert (b"x-request-id", b"abc-1") in unsigned["headers"]
    assert unknown["status"] == 404
    assert (
        sample("earshot_webhook_ack_seconds_count", platform="instagram", status="401")
        == before + 1
    )
    assert (
        sample("earshot_webhook_ack_seconds_count", platform="other", status="404")
        == other + 1
    )


@pytest.mark.django_db(transaction=True)
def test_websocket_connections_gauge_rises_and_falls(
    tenant: Tenant, agent: User
) -> None:
    headers = session_headers(agent)
    before = sample("earshot_websocket_connections", consumer="inbox")

    async def scenario() -> float:
        socket = await open_socket(tenant.slug, headers, agent)
        during = sample("earshot_websocket_connections", consumer="inbox")
        await socket.disconnect()
        return during

    during = async_to_sync(scenario)()

    assert during == before + 1
    assert sample("earshot_websocket_connections", consumer="inbox") == before


# --- queue depths from the broker ---------------------------------------------------


def _redis_broker() -> str:
    # This run's own Redis database (REDIS_URL); nothing else queues there.
    return str(settings.REDIS_URL)


@pytest.fixture
def redis_broker() -> Iterator[str]:
    url = _redis_broker()
    client = redis.Redis.from_url(url)
    keys = ["inbound", "delivery", "default", "delivery\x06\x163"]
    client.delete(*keys)
    yield url
    client.delete(*keys)
    client.close()


def depth_samples(body: bytes) -> dict[str, float]:
    family = families(body).get("earshot_queue_depth")
    if family is None:
        return {}
    return {each.labels["queue"]: each.value for each in family.samples}


def test_queue_depth_is_read_from_redis_at_scrape_time(redis_broker: str) -> None:
    client = redis.Redis.from_url(redis_broker)
    client.rpush("inbound", "a", "b", "c")
    client.rpush("delivery\x06\x163", "d")
    client.close()

    with override_settings(CELERY_BROKER_URL=redis_broker):
        depths = depth_samples(scrape(Client()).content)

    assert {name: depths[name] for name in ("inbound", "delivery", "default")} == {
        "inbound": 3.0,
        "delivery": 1.0,
        "default": 0.0,
    }


def test_queue_depth_is_read_from_rabbitmq() -> None:
    url = "amqp://guest:guest@127.0.0.1:5672//"
    name = "earshot-observability-test"
    with Connection(url, connect_timeout=2) as connection:
        channel: Any = connection.channel()
        channel.queue_declare(queue=name, durable=False, auto_delete=False)
        channel.queue_purge(name)
        for _ in range(2):
            message = channel.prepare_message(b"x", content_type="text/plain")
            channel.basic_publish(message, exchange="", routing_key=name)
        try:
            routes = {"test.task": {"queue": name}}
            with override_settings(CELERY_BROKER_URL=url, CELERY_TASK_ROUTES=routes):
                depths = depth_samples(scrape(Client()).content)
        finally:
            channel.queue_delete(name)
            channel.close()

    assert depths[name] == 2.0
    assert set(depths) >= {"inbound", "delivery", "default", name}


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_an_unreachable_broker_reports_minus_one_and_an_error(scheme: str) -> None:
    url = f"{scheme}://guest:guest@127.0.0.1:{closed_port()}/"
    before = sample("earshot_queue_depth_errors_total")

    with override_settings(CELERY_BROKER_URL=url):
        response = scrape(Client())

    assert response.status_code == 200
    depths = depth_samples(response.content)
    assert {depths[name] for name in ("inbound", "delivery", "default")} == {-1.0}
    assert sample("earshot_queue_depth_errors_total") == before + 1


def test_the_memory_broker_reports_no_depth() -> None:
    with override_settings(CELERY_BROKER_URL="memory://"):
        response = scrape(Client())

    assert response.status_code == 200
    assert depth_samples(response.content) == {}


# --- many processes -----------------------------------------------------------------

CHILD = """
import sys
from helpdesk import metrics
metrics.count_ingested("x", int(sys.argv[1]))
metrics.websocket_opened("inbox")
if sys.argv[2] == "wait":
    print("ready", flush=True)
    sys.stdin.read()
"""

SCRAPE = """
import json
from helpdesk import metrics
from prometheus_client.parser import text_string_to_metric_families
body, _ = metrics.render_metrics()
out = {}
for family in text_string_to_metric_families(body.decode()):
    for each in family.samples:
        if each.name.startswith(("earshot_ingest", "earshot_websocket")):
            out[each.name + "/" + ",".join(sorted(each.labels.values()))] = each.value
print(json.dumps(out))
"""


def test_multiprocess_mode_sums_every_process(tmp_path: Any) -> None:
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "DATABASE_URL": "sqlite:///" + str(tmp_path / "unused.sqlite3"),
        "EARSHOT_DEMO": "1",
        "CELERY_BROKER_URL": "memory://",
        "REDIS_URL": "",
    }
    env.pop("MIGRATOR_DATABASE_URL", None)
    command = [sys.executable, "-c"]

    def python(code: str, *args: str) -> str:
        done = subprocess.run(
            [*command, code, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    python(CHILD, "7", "exit")  # a previous run's values, cleared at start-up
    metrics.clear_multiprocess_dir(str(tmp_path))
    python(CHILD, "2", "exit")
    alive = subprocess.Popen(
        [*command, CHILD, "3", "wait"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert alive.stdout is not None
        assert alive.stdout.readline().strip() == "ready"
        while_alive = json.loads(python(SCRAPE))
    finally:
        alive.communicate("", timeout=60)
    after_exit = json.loads(python(SCRAPE))

    assert while_alive["earshot_ingest_items_total/x"] == 5.0
    assert while_alive["earshot_websocket_connections/inbox"] == 1.0
    assert after_exit["earshot_ingest_items_total/x"] == 5.0
    assert after_exit.get("earshot_websocket_connections/inbox", 0.0) == 0.0
