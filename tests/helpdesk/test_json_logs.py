"""Structured logs: request ids in and out, task ids, the tenant id, JSON lines
under LOG_FORMAT=json, and no token, secret, email address or message body in
any line, through the real code paths."""

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from helpdesk import tasks
from helpdesk.models import Message
from helpdesk.observability.logs import JsonFormatter, redact
from helpdesk.services.replies import post_reply
from social.connectors.base import ConnectorError
from social.models import SocialAccount
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, member, receive
from tests.helpdesk.fakes import FakeConnector

pytestmark = pytest.mark.django_db

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GENERATED = re.compile(r"[0-9a-f]{32}")
FIELDS = {"time", "level", "logger", "message", "tenant_id", "request_id", "task_id"}


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line]


@pytest.fixture
def json_lines() -> Iterator[Captured]:
    """The root logger's records as LOG_FORMAT=json writes them."""
    captured = Captured()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield captured
    root.removeHandler(handler)


# --- request ids --------------------------------------------------------------------


def test_a_sane_request_id_is_echoed() -> None:
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="edge-7f3a.01:x")

    assert response["X-Request-ID"] == "edge-7f3a.01:x"


@pytest.mark.parametrize("given", [None, "", "has spaces", "x" * 129, "a\nb", "é"])
def test_a_missing_or_odd_request_id_is_replaced(given: str | None) -> None:
    headers = {} if given is None else {"X-Request-ID": given}

    response = Client().get("/healthz", headers=headers)

    assert GENERATED.fullmatch(response["X-Request-ID"])


# --- the real code paths, in JSON ---------------------------------------------------


def test_an_api_4xx_with_a_bearer_token_logs_neither_the_token_nor_more(
    tenant: Tenant, agent: User, json_lines: Captured
) -> None:
    with tenant_context(tenant):
        _, raw = create_api_token(membership_of(tenant, agent), name="t", scope="read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = client.get(
        f"/api/v1/t/{tenant.slug}/conversations/987654/",
        HTTP_X_REQUEST_ID="req-api-404",
    )

    assert response.status_code == 404
    assert response["X-Request-ID"] == "req-api-404"
    [line] = [
        entry for entry in json_lines.lines() if entry["logger"] == "django.request"
    ]
    assert set(line) == FIELDS
    assert (line["level"], line["request_id"], line["tenant_id"]) == (
        "WARNING",
        "req-api-404",
        tenant.pk,
    )
    assert line["message"] == (
        f"Not Found: /api/v1/t/{tenant.slug}/conversations/987654/"
    )
    assert raw not in json_lines.text
    assert raw.split("_", 1)[1] not in json_lines.text


def test_a_failed_delivery_logs_its_task_and_tenant_but_no_personal_data(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    json_lines: Captured,
) -> None:
    conversation = receive(account, item(text="My card ends 4242")).conversation
    with tenant_context(tenant):
        reply = post_reply(
            conversation, membership=member(tenant, agent), text="Call me on 555-0199"
        )
        Message.objects.filter(pk=reply.message.pk).update(send_after=timezone.now())
    fake_platforms.behaviour.errors = [
        ConnectorError(
            "refused for jo.martin@example.com (Authorization: Bearer sk-live-abc123)"
            ' {"text": "Call me on 555-0199", "client_secret": "s3cr3t-value"}',
            permanent=True,
        )
    ]

    result = tasks.deliver_message.apply(
        args=(tenant.pk, reply.message.pk), task_id="task-log-1", throw=False
    )
    logging.getLogger("helpdesk.tasks").warning("after the task")

    assert result.result == "failed"
    lines = json_lines.lines()
    [failed] = [entry for entry in lines if "failed:" in entry["message"]]
    assert (failed["level"], failed["logger"]) == ("WARNING", "helpdesk.tasks")
    assert (failed["task_id"], failed["tenant_id"]) == ("task-log-1", tenant.pk)
    assert failed["message"] == (
        f"delivery of message {reply.message.pk} failed: refused for [redacted] "
        '(Authorization: Bearer [redacted]) {"text": "[redacted]", '
        '"client_secret": [redacted]}'
    )
    for secret in ("jo.martin@example.com", "sk-live-abc123", "555-0199", "s3cr3t"):
        assert secret not in json_lines.text
    assert lines[-1]["message"] == "after the task"
    assert lines[-1]["task_id"] is None


def test_an_exception_is_logged_redacted() -> None:
    logger = logging.getLogger("helpdesk.test")
    formatter = JsonFormatter()
    try:
        raise ValueError("connect to postgres://app:pw-123@db/earshot as a@b.io")
    except ValueError:
        record = logger.makeRecord(
            "helpdesk.test", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )

    entry = json.loads(formatter.format(record))

    assert "pw-123" not in entry["exc"]
    assert "a@b.io" not in entry["exc"]
    assert "postgres://[redacted]@db/earshot" in entry["exc"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "authorization=Basic [redacted]"),
        ("Authorization: raw-key-123", "Authorization: [redacted]"),
        ("used esk_live_0123abcdef", "used [redacted]"),
        ("redis://:hunter22@cache:6379/0", "redis://[redacted]@cache:6379/0"),
        ("password=hunter2 retry", "password=[redacted] retry"),
        ("access_token: 'ya29.abc'", "access_token: [redacted]"),
        ('{"body": "hi \\"there\\"", "id": 3}', '{"body": "[redacted]", "id": 3}'),
        ("from Jo.Martin+care@mail.example.org", "from [redacted]"),
        ("delivery 12 sent in 3 ms", "delivery 12 sent in 3 ms"),
    ],
)
def test_redaction(text: str, expected: str) -> None:
    assert redact(text) == expected


# --- the configuration --------------------------------------------------------------

EMIT = """
import django, logging
django.setup()
logging.getLogger("helpdesk.check").warning("signed up jo@example.com, token=abc1")
"""


def _run(log_format: str | None) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "DATABASE_URL": "sqlite:///unused-observability.sqlite3",
        "EARSHOT_DEMO": "1",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "memory://",
    }
    env.pop("MIGRATOR_DATABASE_URL", None)
    env.pop("LOG_FORMAT", None)
    if log_format is not None:
        env["LOG_FORMAT"] = log_format
    done = subprocess.run(
        [sys.executable, "-c", EMIT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


def test_log_format_json_writes_one_json_object_per_line() -> None:
    [line] = _run("json").splitlines()
    entry = json.loads(line)

    assert set(entry) == FIELDS
    assert (entry["level"], entry["logger"]) == ("WARNING", "helpdesk.check")
    assert entry["message"] == "signed up [redacted], token=[redacted]"
    assert (entry["tenant_id"], entry["request_id"], entry["task_id"]) == (
        None,
        None,
        None,
    )


def test_the_default_format_is_the_plain_line() -> None:
    [line] = _run(None).splitlines()

    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING helpdesk\.check "
        r"signed up \[redacted\], token=\[redacted\]",
        line,
    )
