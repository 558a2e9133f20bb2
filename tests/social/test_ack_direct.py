"""Webhook deliveries answered below uvicorn's per-request task (issue 12 item 6).

helpdesk.web_server's HTTP protocol hands the usual delivery (a POST to exactly
/hooks/<platform>/ with a Content-Length the loop verifies) to
`WebhookFastPath.take`/`.answer` instead of starting an ASGI task. Each test serves
the same request through the worker's protocol with the direct path and without it
(uvicorn's cycle and the ASGI fast path, as before) on a transport that records
what is written, and compares the bytes; the deliveries are stored for real by the
group commit.
"""

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.asgi import get_asgi_application
from prometheus_client import REGISTRY
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from helpdesk.web_server import DirectCycle, _counted, direct_http_of
from social import webhook_asgi
from social.models import SocialAccount, WebhookEvent
from social.sandbox.network import sign
from social.webhook_asgi import WebhookFastPath
from tests.helpdesk.test_web_server import Events, RecordingTransport, connected
from tests.social.test_webhooks import SECRET, post_event
from tests.social.test_webhooks import routed as routed

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT_HEADERS = [(b"date", b"Mon, 07 Dec 2026 23:00:00 GMT"), (b"server", b"t")]


class CountingFastPath(WebhookFastPath):
    """The fast path as helpdesk/asgi.py builds it, counting its ASGI calls."""

    def __init__(self) -> None:
        super().__init__(get_asgi_application(), observe=True)
        self.asgi_calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.asgi_calls += 1
        await super().__call__(scope, receive, send)


def served(
    requests: list[bytes],
    *,
    direct: bool,
    answers: int = 1,
    lose_after: int | None = None,
    write_paused: bool = False,
) -> tuple[Events, CountingFastPath, Any]:
    """What the worker's protocol writes for `requests`, each fed once the one
    before has its `answers` answers (a read may hold several requests), with or
    without the direct path: (events, the app, the protocol)."""
    app = CountingFastPath()
    protocol_class = _counted(HttpToolsProtocol, lambda: None, app if direct else None)

    async def go() -> tuple[Events, Any]:
        protocol, transport, state = connected(protocol_class, app)
        state.default_headers = DEFAULT_HEADERS
        if write_paused:  # the client has not read what it was sent
            protocol.pause_writing()
            asyncio.get_running_loop().call_later(0.2, protocol.resume_writing)
        for n, request in enumerate(requests):
            written = _answers(transport.events)
            protocol.data_received(request)
            if lose_after == n:
                protocol.connection_lost(None)
                await _stored()
            else:
                await _answered(transport, written + answers, state)
        if protocol.timeout_keep_alive_task is not None:
            protocol.timeout_keep_alive_task.cancel()
        return transport.events, protocol

    events, protocol = asyncio.run(go())
    return events, app, protocol


def _answers(events: Events) -> int:
    """Answers written so far (an interim 100 Continue is not one)."""
    return sum(
        1 for kind, data in events if kind == "write" and b" 100 Continue" not in data
    )


async def _answered(transport: RecordingTransport, answers: int, state: Any) -> None:
    """Until `answers` answers are written, at most 10 s."""
    for _ in range(1000):
        if state.tasks:
            await asyncio.gather(*state.tasks)
        if _answers(transport.events) >= answers:
            for _ in range(3):
                await asyncio.sleep(0)
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not {answers} answers in 10 s: {transport.events}")


async def _stored() -> None:
    """Until a row is stored, then time for the loop to run its answer."""
    for _ in range(1000):
        if await asyncio.to_thread(WebhookEvent.objects.count):
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing stored in 10 s")


def delivery(
    payload: dict[str, Any] | bytes | None = None,
    *,
    path: str = "/hooks/sandbox/",
    extra: str = "",
    secret: str = SECRET,
) -> bytes:
    if isinstance(payload, bytes):
        raw = payload
    else:
        fresh = post_event("100", event_id=str(uuid.uuid4()))
        raw = json.dumps(payload or fresh).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"X-Sandbox-Signature: {sign(raw, secret)}\r\nX-Request-ID: req-1\r\n"
        f"Content-Length: {len(raw)}\r\n{extra}\r\n"
    ).encode() + raw


def ack_count(status: str) -> float:
    labels = {"platform": "sandbox", "status": status}
    return REGISTRY.get_sample_value("earshot_webhook_ack_seconds_count", labels) or 0


def test_direct_answers_are_the_bytes_of_the_asgi_path_without_its_task(
    routed: SocialAccount,
) -> None:
    stored = post_event("100", event_id="evt-stored")
    cases: dict[str, Callable[[], bytes]] = {
        "accepted": lambda: delivery(),
        "duplicate": lambda: delivery(stored),
        "bad signature": lambda: delivery(secret="not-the-secret"),
        "unknown platform": lambda: delivery(path="/hooks/myspace/"),
        "signed malformed": lambda: delivery(f"not json {uuid.uuid4()}".encode()),
    }
    served([delivery(stored)], direct=False)  # the duplicate's first copy
    for case, request in cases.items():
        plain, plain_app, _ = served([request()], direct=False)
        before = WebhookEvent.objects.count()
        direct, direct_app, _ = served([request()], direct=True)
        assert direct == plain, case
        assert [kind for kind, _ in direct] == ["write"], case
        assert (
            b"\r\ndate: Mon, 07 Dec 2026 23:00:00 GMT\r\nserver: t\r\n" in direct[0][1]
        )
        assert direct[0][1].endswith(b"x-request-id: req-1\r\n\r\n" + _body(plain))
        assert (plain_app.asgi_calls, direct_app.asgi_calls) == (1, 0), case
        stored_now = WebhookEvent.objects.count() - before
        assert stored_now == (1 if case in ("accepted", "signed malformed") else 0)
    statuses = [_status(served([r()], direct=True)[0]) for r in cases.values()]
    assert statuses == [200, 200, 401, 404, 400]


def test_a_direct_answer_is_observed_as_the_asgi_one_is(routed: SocialAccount) -> None:
    before = ack_count("200"), ack_count("401")
    served([delivery()], direct=False)
    served([delivery(secret="x")], direct=False)
    middle = ack_count("200"), ack_count("401")
    served([delivery()], direct=True)
    served([delivery(secret="x")], direct=True)
    after = ack_count("200"), ack_count("401")
    assert [m - b for m, b in zip(middle, before, strict=True)] == [1, 1]
    assert [a - m for a, m in zip(after, middle, strict=True)] == [1, 1]


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(lambda: delivery(path="/hooks/sandbox/?x=1"), id="query string"),
        pytest.param(lambda: delivery(path="/hooks/sand%62ox/"), id="escaped"),
        pytest.param(
            lambda: delivery(extra="Expect: 100-continue\r\n"), id="100-continue"
        ),
        pytest.param(
            lambda: delivery().replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1),
            id="HTTP/1.0",
        ),
        pytest.param(
            lambda: (
                b"POST /hooks/sandbox/ HTTP/1.1\r\nHost: t\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
            ),
            id="chunked",
        ),
        pytest.param(
            lambda: b"GET /hooks/sandbox/ HTTP/1.1\r\nHost: t\r\n\r\n", id="GET"
        ),
    ],
)
def test_requests_it_does_not_take_get_the_asgi_answer(
    routed: SocialAccount, request_bytes: Any
) -> None:
    plain, _, _ = served([request_bytes()], direct=False)
    direct, direct_app, _ = served([request_bytes()], direct=True)
    assert direct_app.asgi_calls == 1
    assert _status(direct) == _status(plain)
    assert _without_request_id(direct) == _without_request_id(plain)


def test_a_body_over_the_limit_goes_the_asgi_way_and_gets_its_413(
    routed: SocialAccount, settings: Any
) -> None:
    settings.WEBHOOK_MAX_BYTES = 512
    big = delivery(post_event("100", text="x" * 600))
    direct, app, _ = served([big], direct=True)
    assert (app.asgi_calls, _status(direct)) == (1, 413)
    assert direct == served([big], direct=False)[0]
    assert WebhookEvent.objects.count() == 0


def test_connection_close_and_pipelined_deliveries_as_uvicorn_answers_them(
    routed: SocialAccount,
) -> None:
    plain, _, _ = served([delivery(extra="Connection: close\r\n")], direct=False)
    direct, _, _ = served([delivery(extra="Connection: close\r\n")], direct=True)
    assert direct == plain
    assert [kind for kind, _ in direct] == ["write", "close"]
    assert b"\r\nconnection: close\r\n" in direct[0][1]

    # Two deliveries in one read: the second waits for the first's answer.
    direct, app, _ = served([delivery() + delivery()], direct=True, answers=2)
    assert [_status([event]) for event in direct] == [200, 200]
    assert app.asgi_calls == 1  # the one that waited went the ASGI way
    assert WebhookEvent.objects.count() == 4


def test_while_the_client_does_not_read_a_delivery_takes_the_asgi_way(
    routed: SocialAccount,
) -> None:
    # Its send waits for the transport to drain (and the connection to be read).
    events, app, _ = served([delivery()], direct=True, write_paused=True)
    assert (app.asgi_calls, _status(events)) == (1, 200)


def test_a_connection_lost_before_the_commit_gets_nothing_and_keeps_the_row(
    routed: SocialAccount,
) -> None:
    events, app, protocol = served([delivery()], direct=True, lose_after=0)
    assert events == [("close", b"")]  # uvicorn closes it; nothing written
    assert app.asgi_calls == 0
    assert protocol.cycle is None
    assert WebhookEvent.objects.count() == 1


def test_an_answer_that_raises_is_uvicorns_500_and_the_connection_closes(
    routed: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the check")

    monkeypatch.setattr(webhook_asgi, "check_delivery", broken)
    plain, _, _ = served([delivery()], direct=False)
    direct, app, _ = served([delivery()], direct=True)
    assert direct == plain
    assert _status(direct) == 500
    assert direct[-1] == ("close", b"")
    assert app.asgi_calls == 0
    assert WebhookEvent.objects.count() == 0


def test_the_app_module_offers_its_fast_path_to_the_web_server() -> None:
    import helpdesk.asgi

    assert direct_http_of("helpdesk.asgi:application") is helpdesk.asgi.http_app
    assert direct_http_of("tests.helpdesk.web_server_app:application") is None
    assert isinstance(helpdesk.asgi.http_app, WebhookFastPath)


def test_a_direct_cycle_stands_where_uvicorns_cycle_does() -> None:
    # What uvicorn reads from `protocol.cycle` (shutdown, the next request).
    cycle = DirectCycle(object(), CountingFastPath(), None, keep_alive=True)
    assert (cycle.response_complete, cycle.keep_alive, cycle.disconnected) == (
        False,
        True,
        False,
    )


def _status(events: Events) -> int:
    return int(events[0][1].split(b" ", 2)[1])


def _body(events: Events) -> bytes:
    return events[0][1].split(b"\r\n\r\n", 1)[1]


def _without_request_id(events: Events) -> Events:
    """The events with a generated X-Request-ID value blanked (each is new)."""
    out = []
    for kind, data in events:
        head, sep, rest = data.partition(b"x-request-id: ")
        if sep:
            rest = rest[rest.index(b"\r\n") :]
        out.append((kind, head + sep + rest))
    return out


def test_a_callback_that_fails_does_not_keep_its_group_from_the_others() -> None:
    from social import group_commit
    from social.webhooks import Stored

    seen: list[int] = []

    def broken(answer: Stored) -> None:
        raise RuntimeError("an answer that fails")

    items = [
        group_commit._Waiting(None, None, None, callback)  # type: ignore[arg-type]
        for callback in (broken, lambda answer: seen.append(answer.status))
    ]
    answers = [Stored(200, {"status": "accepted"}, n) for n in range(2)]
    group_commit._answer(items, answers)
    assert seen == [200]
