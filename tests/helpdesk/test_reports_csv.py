"""The reports' CSV exports: exact header and rows on constructed care facts, and
that the conversation export is streamed (rows read while the answer is sent,
under WSGI and ASGI alike)."""

import csv
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.http import StreamingHttpResponse

from helpdesk import api_reports, histograms, reports
from helpdesk.models import Conversation
from helpdesk.reports import ROW_FIELDS
from helpdesk.services import exports
from helpdesk.services.exports import cell
from helpdesk.streaming import TenantStreamingResponse, in_tenant
from tenants.context import current_tenant_id, tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, session
from tests.conftest import login
from tests.helpdesk.report_support import make_conversation, make_fact, make_message

pytestmark = pytest.mark.django_db

# asgiref ships no type hints.
Communicator: Any = ApplicationCommunicator
DAY = {"start": "2026-03-02", "end": "2026-03-02"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def b(seconds: float) -> str:
    """A percentile of `seconds` as its CSV cell (the histogram bucket's value)."""
    return cell(histograms.value(histograms.key(seconds)))


@pytest.fixture
def day(tenant: Tenant, agent: User) -> dict[str, Conversation]:
    """Monday 2 March: a (answered by Andy in 10 minutes, in public; the
    customer's next message answered late, after 4000 s; resolved after an hour,
    late) and e (unanswered); Sunday 1 March: f (answered by Andy in 20
    minutes)."""
    a = make_conversation(tenant)
    make_fact(a, "opened", at(2, 9, 10))
    make_message(a, at(2, 9, 10))
    make_fact(
        a,
        "first_response",
        at(2, 9, 10),
        agent=agent,
        visibility="public",
        raw_seconds=600,
        business_seconds=600,
    )
    make_fact(
        a,
        "next_response",
        at(2, 9, 30),
        agent=agent,
        raw_seconds=4000,
        business_seconds=4000,
        breached=True,
    )
    make_fact(
        a,
        "resolution",
        at(2, 9, 10),
        at=at(2, 10, 10),
        agent=agent,
        raw_seconds=3600,
        business_seconds=3000,
        breached=True,
    )
    e = make_conversation(tenant)
    make_fact(e, "opened", at(2, 11))
    f = make_conversation(tenant)
    make_fact(f, "opened", at(1, 10))
    make_fact(
        f,
        "first_response",
        at(1, 10),
        agent=agent,
        visibility="public",
        raw_seconds=1200,
        business_seconds=1200,
    )
    return {"a": a, "e": e, "f": f}


def streamed(client: Any, url: str, params: dict[str, str]) -> Any:
    response = client.get(url, params)
    assert isinstance(response, TenantStreamingResponse)
    return response


def rows_of(response: Any) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_aggregates_csv(
    tenant: Tenant, owner: User, agent: User, day: dict[str, Conversation]
) -> None:
    response = session(owner).get(f"{base(tenant)}/reports/aggregates.csv", DAY)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-air-aggregates-2026-03-02-2026-03-02.csv"'
    )
    summary = [
        ("conversations", "2", "1", "1"),
        ("needing_reply", "2", "1", "1"),
        ("answered", "1", "1", "0"),
        ("no_reply", "0", "0", "0"),
        ("unanswered", "1", "0", "1"),
        ("response_rate", "0.5", "1", "-0.5"),
        ("public_response_rate", "0.5", "1", "-0.5"),
        ("private_response_rate", "", "", ""),
        ("answered_within_1h", "0.5", "1", "-0.5"),
        ("answered_within_24h", "0.5", "1", "-0.5"),
        ("first_response_p50", b(600), b(1200), b_change(600, 1200)),
        ("first_response_p90", b(600), b(1200), b_change(600, 1200)),
        ("first_response_business_p50", b(600), b(1200), b_change(600, 1200)),
        ("first_response_business_p90", b(600), b(1200), b_change(600, 1200)),
        ("next_response_p50", b(4000), "", ""),
        ("next_response_p90", b(4000), "", ""),
        ("breaches", "0", "0", "0"),
        ("breach_rate", "0.5", "0", "0.5"),
        ("resolution_p50", b(3600), "", ""),
        ("resolution_p90", b(3600), "", ""),
        ("off_hours_coverage", "", "", ""),
        ("inbound", "1", "0", "1"),
    ]
    andy = str(agent.pk)
    assert rows_of(response) == [
        ["section", "key", "label", "metric", "value", "previous", "change"],
        *(["summary", "", "", *figures] for figures in summary),
        ["day", "2026-03-02", "", "inbound", "1", "", ""],
        ["day", "2026-03-02", "", "inbound_by_platform.x", "1", "", ""],
        ["day", "2026-03-02", "", "inbound_by_origin.mention", "1", "", ""],
        ["day", "2026-03-02", "", "inbound_by_sentiment.neutral", "1", "", ""],
        ["day", "2026-03-02", "", "first_response_p50", b(600), "", ""],
        ["day", "2026-03-02", "", "first_response_p90", b(600), "", ""],
        ["day", "2026-03-02", "", "target_seconds", "3600", "", ""],
        ["agent", andy, "Andy", "answered", "1", "", ""],
        ["agent", andy, "Andy", "first_response_p50", b(600), "", ""],
        ["agent", andy, "Andy", "public_replies", "0", "", ""],
        ["agent", andy, "Andy", "private_moves", "0", "", ""],
        ["agent", andy, "Andy", "no_reply", "0", "", ""],
        ["fairness", "small", "", "answered", "1", "", ""],
        ["fairness", "small", "", "first_response_p50", b(600), "", ""],
        ["fairness", "small", "", "first_response_p90", b(600), "", ""],
        ["fairness", "medium", "", "answered", "0", "", ""],
        ["fairness", "medium", "", "first_response_p50", "", "", ""],
        ["fairness", "medium", "", "first_response_p90", "", "", ""],
        ["fairness", "large", "", "answered", "0", "", ""],
        ["fairness", "large", "", "first_response_p50", "", "", ""],
        ["fairness", "large", "", "first_response_p90", "", "", ""],
        ["fairness", "", "", "ratio", "", "", ""],
        ["fairness", "", "", "flagged", "false", "", ""],
    ]


def b_change(now: float, before: float) -> str:
    return cell(
        histograms.value(histograms.key(now)) - histograms.value(histograms.key(before))
    )


def test_aggregates_without_compare_leave_previous_and_change_empty(
    tenant: Tenant, owner: User, day: dict[str, Conversation]
) -> None:
    response = session(owner).get(
        f"{base(tenant)}/reports/aggregates.csv", {**DAY, "compare": "false"}
    )
    summary = [row for row in rows_of(response) if row[0] == "summary"]
    assert summary[0] == ["summary", "", "", "conversations", "2", "", ""]
    assert {(row[5], row[6]) for row in summary} == {("", "")}


def test_conversations_csv_has_one_row_per_conversation(
    tenant: Tenant, owner: User, agent: User, day: dict[str, Conversation]
) -> None:
    response = session(owner).get(f"{base(tenant)}/reports/conversations.csv", DAY)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-air-conversations-2026-03-02-2026-03-02.csv"'
    )
    with tenant_context(tenant):
        brand = str(Brand.objects.get().pk)
    a, e = str(day["a"].pk), str(day["e"].pk)
    assert rows_of(response) == [
        ["conversation_id", "brand_id", "account_id", "platform", "origin",
         "follower_band", "opened_at", "first_response_seconds",
         "first_response_business_seconds", "first_response_breached",
         "next_response_breached", "resolution_seconds",
         "resolution_business_seconds", "resolution_breached", "resolved_at",
         "agent_id", "agent"],
        [a, brand, "", "x", "mention", "small", "2026-03-02T09:10:00+00:00",
         "600", "600", "false", "true", "3600", "3000", "true",
         "2026-03-02T10:10:00+00:00", str(agent.pk), "Andy"],
        [e, brand, "", "x", "mention", "small", "2026-03-02T11:00:00+00:00",
         "", "", "false", "false", "", "", "false", "", "", ""],
    ]  # fmt: skip
    # Every column but the agent's name is the selector's field of that name.
    assert (*ROW_FIELDS, "agent") == exports.CONVERSATION_COLUMNS


def test_the_conversation_rows_are_read_while_the_answer_is_sent(
    tenant: Tenant,
    owner: User,
    day: dict[str, Conversation],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exports, "CHUNK_ROWS", 1)
    response = streamed(
        session(owner), f"{base(tenant)}/reports/conversations.csv", DAY
    )
    # Stored after the view returned, before the body is read: it is in the body.
    late = make_conversation(tenant)
    make_fact(late, "opened", at(2, 23, 59))
    chunks = list(response.streaming_content)
    assert len(chunks) == 4  # the header, then one row per chunk
    assert [line.split(b",")[0] for line in chunks[1:]] == [
        str(c.pk).encode() for c in (day["a"], day["e"], late)
    ]
    assert current_tenant_id() is None


def test_under_asgi_the_body_is_streamed_chunk_by_chunk(
    tenant: Tenant, owner: User, day: dict[str, Conversation]
) -> None:
    response = streamed(
        session(owner), f"{base(tenant)}/reports/conversations.csv", DAY
    )

    async def collect() -> list[bytes]:
        return [chunk async for chunk in response]

    chunks = async_to_sync(collect)()
    assert len(chunks) == 2  # the header, then both rows in one chunk
    assert chunks[1].count(b"\r\n") == 2
    assert current_tenant_id() is None


def _counting(produced: list[int], seen: list[int | None]) -> Iterator[str]:
    try:
        for n in range(3):
            produced.append(n)
            seen.append(current_tenant_id())
            yield f"{n}\n"
    finally:
        produced.append(-1)


def test_asgi_streaming_pulls_one_chunk_at_a_time_in_the_tenants_context(
    tenant: Tenant,
) -> None:
    produced: list[int] = []
    seen: list[int | None] = []
    response = TenantStreamingResponse(
        in_tenant(tenant, lambda: _counting(produced, seen))
    )

    async def first_two() -> list[bytes]:
        taken = []
        async for chunk in response:
            taken.append(chunk)
            assert produced == list(range(len(taken)))
            if len(taken) == 2:
                break
        return taken

    assert async_to_sync(first_two)() == [b"0\n", b"1\n"]
    # The client went away after two chunks: the generator was closed (its
    # finally ran) and the tenant's context with it.
    assert produced == [0, 1, -1]
    assert seen == [tenant.pk, tenant.pk]
    assert current_tenant_id() is None


def test_cells() -> None:
    assert [cell(v) for v in (None, True, False, 3, 0.5, 2 / 3, 1.0, -0.0)] == [
        "",
        "true",
        "false",
        "3",
        "0.5",
        "0.666667",
        "1",
        "0",
    ]
    assert cell(datetime(2026, 3, 2, 9, 10, tzinfo=UTC)) == "2026-03-02T09:10:00+00:00"
    # What a spreadsheet would run as a formula is quoted.
    assert [cell(v) for v in ("=SUM(A1)", "+1", "-2", "@x", "Andy")] == [
        "'=SUM(A1)",
        "'+1",
        "'-2",
        "'@x",
        "Andy",
    ]


def test_outsiders_get_no_csv(
    tenant: Tenant, outsider: User, day: dict[str, Conversation]
) -> None:
    for name in ("aggregates.csv", "conversations.csv"):
        response = session(outsider).get(f"{base(tenant)}/reports/{name}", DAY)
        assert response.status_code == 404
        assert not response.streaming
        assert b"Acme" not in response.content


def test_accepting_only_csv_still_gets_the_csv_and_errors_in_json(
    tenant: Tenant, owner: User, day: dict[str, Conversation]
) -> None:
    client = session(owner)
    url = f"{base(tenant)}/reports/conversations.csv"
    response = client.get(url, DAY, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert len(rows_of(response)) == 3
    refused = client.get(url, {"start": "soon"}, HTTP_ACCEPT="text/csv")
    assert refused.status_code == 400
    assert refused.json()["fields"] == {
        "start": [
            "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
        ]
    }


@pytest.mark.django_db(transaction=True)
def test_through_the_asgi_application_rows_go_out_as_they_are_read(
    tenant: Tenant,
    owner: User,
    day: dict[str, Conversation],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real ASGI app (as uvicorn runs it) sends the first row before the
    second is read: the selector waits for the test to receive the first row.
    (Django's own StreamingHttpResponse would read every row before sending.)"""
    from helpdesk.asgi import application

    gate = threading.Event()
    read = reports.report_conversation_rows

    def gated(membership: Any, filters: Any) -> Iterator[dict[str, Any]]:
        for n, row in enumerate(read(membership, filters)):
            if n == 1:
                assert gate.wait(10)
            yield row

    monkeypatch.setattr(api_reports, "report_conversation_rows", gated)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 1)
    cookie = login(owner).cookies[settings.SESSION_COOKIE_NAME].value
    path = f"{base(tenant)}/reports/conversations.csv"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"start=2026-03-02&end=2026-03-02",
        "headers": [
            (b"host", b"testserver"),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def exchange() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        communicator: Any = Communicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        bodies = [await communicator.receive_output(5) for _ in range(2)]
        gate.set()
        while bodies[-1].get("more_body"):
            bodies.append(await communicator.receive_output(5))
        await communicator.wait(5)
        return start, bodies

    start, bodies = async_to_sync(exchange)()
    assert start["status"] == 200
    assert (b"Content-Type", b"text/csv; charset=utf-8") in start["headers"]
    assert bodies[0]["body"].startswith(b"conversation_id,brand_id,")
    assert [message["body"].split(b",")[0] for message in bodies[1:3]] == [
        str(day["a"].pk).encode(),
        str(day["e"].pk).encode(),
    ]
    assert bodies[3] == {"type": "http.response.body"}
    assert len(bodies) == 4
