"""helpdesk/asgi_handler.py: one hop per request, on a reused thread.

The handler is driven in process (the ASGI calls a server makes) beside Django's
own ASGIHandler, so the answers can be compared byte for byte. The views of
`urlpatterns` below record the thread they run on.
"""

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from helpdesk.asgi_handler import RequestThreads, SyncASGIHandler
from helpdesk.models import Message
from helpdesk.streaming import TenantStreamingResponse, in_tenant
from helpdesk.urls import urlpatterns as project_urlpatterns
from social.api_channel import create_api_channel
from tenants.api_tokens import create_api_token
from tenants.context import current_tenant_id, tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)

THIS = "tests.helpdesk.test_asgi_handler"
threads_seen: list[tuple[str, threading.Thread]] = []
release = threading.Event()


def where(request: HttpRequest) -> HttpResponse:
    threads_seen.append(("view", threading.current_thread()))
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("here")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    threads_seen.append(("view", threading.current_thread()))
    tenant = Tenant.objects.get(slug=request.GET["slug"])

    def rows() -> Iterator[str]:
        for n in range(3):
            threads_seen.append(("chunk", threading.current_thread()))
            assert current_tenant_id() == tenant.pk
            yield f"{n},{Brand.objects.count()}\n"

    return TenantStreamingResponse(in_tenant(tenant, rows))


async def doubled(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


def bridge(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(async_to_sync(doubled)(21)))


def blocked(request: HttpRequest) -> HttpResponse:
    threads_seen.append(("view", threading.current_thread()))
    release.wait(timeout=10)
    return HttpResponse("late")


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"%d:%b" % (len(request.body), request.body[-8:]))


urlpatterns = [
    path("asgi-test/where/", where),
    path("asgi-test/stream/", stream),
    path("asgi-test/bridge/", bridge),
    path("asgi-test/blocked/", blocked),
    path("asgi-test/broken/", broken),
    path("asgi-test/echo/", echo),
    *project_urlpatterns,
]


def _scope(
    method: str, target: str, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    path_info, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_info,
        "raw_path": path_info.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            *([(b"content-length", str(len(body)).encode())] if body else []),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def _call(
    app: Any,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    events: list[str] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    delivered = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if events is not None:
            events.append(message["type"])
        sent.append(message)

    await app(_scope(method, target, headers or {}, body), receive, send)
    start = sent[0]
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], start["headers"], content


def run(
    app: Any, method: str, target: str, **kwargs: Any
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    result: tuple[int, list[tuple[bytes, bytes]], bytes] = async_to_sync(_call)(
        app, method, target, **kwargs
    )
    return result


VARYING = re.compile(rb"(nonce-|nonce=\"|csrfmiddlewaretoken\" value=\")[-\w]+")


def comparable(
    answer: tuple[int, list[tuple[bytes, bytes]], bytes],
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer without what differs on every request: the request id, the CSRF
    cookie and token, and the CSP nonce."""
    status, headers, body = answer
    kept = [
        (name, VARYING.sub(rb"\1*", value))
        for name, value in headers
        if name.lower() not in {b"x-request-id", b"set-cookie"}
    ]
    return status, kept, VARYING.sub(rb"\1*", body)


@pytest.fixture
def handler() -> SyncASGIHandler:
    return SyncASGIHandler(threads=4)


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    threads_seen.clear()
    release.clear()
    yield
    release.set()


def test_answers_are_djangos_byte_for_byte(
    tenant: Tenant, owner: User, handler: SyncASGIHandler
) -> None:
    with tenant_context(tenant):
        _, token = create_api_token(
            membership_of(tenant, owner), name="cmp", scope="read"
        )
    bearer = {"authorization": f"Bearer {token}"}
    api = f"/api/v1/t/{tenant.slug}"
    requests: list[tuple[str, str, dict[str, str], bytes]] = [
        ("GET", f"{api}/ping/", bearer, b""),
        ("GET", f"{api}/brands/", bearer, b""),
        ("GET", f"{api}/conversations/?status=open", bearer, b""),
        ("GET", f"{api}/conversations/?status=nope", bearer, b""),
        ("GET", f"{api}/ping/", {}, b""),
        ("GET", f"{api}/ping/", {"authorization": "Bearer esk_wrong"}, b""),
        (
            "POST",
            f"{api}/brands/",
            {**bearer, "content-type": "application/json"},
            b"{}",
        ),
        ("GET", "/no/such/page/", {}, b""),
        ("GET", "/accounts/login/", {}, b""),
        ("GET", "/healthz", {}, b""),
    ]
    django_handler = ASGIHandler()
    for method, target, headers, body in requests:
        ours = run(handler, method, target, headers=headers, body=body)
        theirs = run(django_handler, method, target, headers=headers, body=body)
        assert comparable(ours) == comparable(theirs), target
        assert [name for name, _ in ours[1]] == [name for name, _ in theirs[1]]


def test_an_api_write_commits_and_publishes_through_the_handler(
    tenant: Tenant, owner: User, handler: SyncASGIHandler
) -> None:
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        channel = create_api_channel(membership, brand=Brand.objects.get(), name="Chat")
        _, token = create_api_token(membership, name="w", scope="write")
    payload = {"external_id": "m-1", "text": "Hello?", "author": {"id": "c-1"}}

    status, _, body = run(
        handler,
        "POST",
        f"/api/v1/t/{tenant.slug}/channels/{channel.pk}/messages/",
        headers={
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
        },
        body=json.dumps(payload).encode(),
    )

    assert status == 201, body
    created = json.loads(body)
    with tenant_context(tenant):
        message = Message.objects.get(pk=created["message_id"])
    assert message.text == "Hello?"
    assert message.conversation_id == created["conversation_id"]


@override_settings(ROOT_URLCONF=THIS)
def test_one_thread_serves_a_request_and_the_next_one_reuses_it(
    handler: SyncASGIHandler,
) -> None:
    for _ in range(3):
        assert run(handler, "GET", "/asgi-test/where/")[0] == 200

    assert len(threads_seen) == 3
    assert len({thread for _, thread in threads_seen}) == 1
    assert threads_seen[0][1] is not threading.current_thread()
    assert len(handler.threads.idle) == 1


@override_settings(ROOT_URLCONF=THIS)
def test_concurrent_requests_get_threads_of_their_own(
    handler: SyncASGIHandler,
) -> None:
    async def both() -> list[Any]:
        first = asyncio.ensure_future(_call(handler, "GET", "/asgi-test/blocked/"))
        while not threads_seen:
            await asyncio.sleep(0.01)
        second = await _call(handler, "GET", "/asgi-test/where/")
        release.set()
        return [await first, second]

    first, second = async_to_sync(both)()

    assert (first[0], first[2], second[0], second[2]) == (200, b"late", 200, b"here")
    assert threads_seen[0][1] is not threads_seen[1][1]
    assert len(handler.threads.idle) == 2


@override_settings(ROOT_URLCONF=THIS)
def test_a_streamed_body_is_produced_on_the_views_thread(
    tenant: Tenant, handler: SyncASGIHandler
) -> None:
    finished: list[threading.Thread] = []

    def on_finished(**kwargs: Any) -> None:
        finished.append(threading.current_thread())

    signals.request_finished.connect(on_finished)
    try:
        status, _, body = run(handler, "GET", f"/asgi-test/stream/?slug={tenant.slug}")
    finally:
        signals.request_finished.disconnect(on_finished)

    assert (status, body) == (200, b"0,1\n1,1\n2,1\n")
    assert [kind for kind, _ in threads_seen] == ["view", "chunk", "chunk", "chunk"]
    assert len({thread for _, thread in threads_seen}) == 1
    assert finished == [threads_seen[0][1]]
    assert current_tenant_id() is None


@override_settings(ROOT_URLCONF=THIS)
def test_a_body_in_memory_is_closed_before_it_is_sent(
    handler: SyncASGIHandler,
) -> None:
    order: list[str] = []

    def on_started(**kwargs: Any) -> None:
        order.append("request_started")

    def on_finished(**kwargs: Any) -> None:
        order.append("request_finished")

    signals.request_started.connect(on_started)
    signals.request_finished.connect(on_finished)
    try:
        status, _, body = run(handler, "GET", "/asgi-test/where/", events=order)
    finally:
        signals.request_started.disconnect(on_started)
        signals.request_finished.disconnect(on_finished)

    assert (status, body) == (200, b"here")
    assert order == [
        "request_started",
        "request_finished",
        "http.response.start",
        "http.response.body",
    ]


@override_settings(ROOT_URLCONF=THIS)
def test_async_to_sync_in_a_view_reaches_the_servers_loop(
    handler: SyncASGIHandler,
) -> None:
    assert run(handler, "GET", "/asgi-test/bridge/")[::2] == (200, b"42")


@override_settings(ROOT_URLCONF=THIS, DEBUG=False)
def test_a_view_that_raises_answers_500_and_the_thread_is_reused(
    handler: SyncASGIHandler,
) -> None:
    status, _, _ = run(handler, "GET", "/asgi-test/broken/")
    assert status == 500
    assert run(handler, "GET", "/asgi-test/where/")[0] == 200
    assert len(handler.threads.idle) == 1


@override_settings(ROOT_URLCONF=THIS)
def test_a_cancelled_request_does_not_give_back_its_busy_thread(
    handler: SyncASGIHandler,
) -> None:
    async def cancel() -> None:
        task = asyncio.ensure_future(_call(handler, "GET", "/asgi-test/blocked/"))
        while not threads_seen:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(cancel)()
    assert handler.threads.idle == []
    release.set()

    assert run(handler, "GET", "/asgi-test/where/")[0] == 200
    assert threads_seen[-1][1] is not threads_seen[0][1]


def test_idle_threads_beyond_the_setting_are_stopped() -> None:
    threads = RequestThreads(keep=1)
    first, second = threads.take(), threads.take()
    threads.give(first)
    threads.give(second)

    assert threads.idle == [first]
    assert second._shutdown
    assert threads.take() is first


@override_settings(ROOT_URLCONF=THIS, FILE_UPLOAD_MAX_MEMORY_SIZE=10)
@pytest.mark.parametrize(
    "parts", [[b"short"], [b"a body over the limit"], [b"in ", b"three ", b"parts"]]
)
def test_a_body_in_any_number_of_parts_reaches_the_view_whole(
    handler: SyncASGIHandler, parts: list[bytes]
) -> None:
    async def call(app: Any) -> list[dict[str, Any]]:
        messages = [
            {"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
            for n, part in enumerate(parts)
        ]
        sent: list[dict[str, Any]] = []
        never = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await never.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        body = b"".join(parts)
        await app(_scope("POST", "/asgi-test/echo/", {}, body), receive, send)
        return sent

    ours = async_to_sync(call)(handler)
    theirs = async_to_sync(call)(ASGIHandler())

    body = b"".join(parts)
    assert ours[1:] == [
        {
            "type": "http.response.body",
            "body": b"%d:%b" % (len(body), body[-8:]),
            "more_body": False,
        }
    ]
    assert comparable((ours[0]["status"], ours[0]["headers"], ours[1]["body"])) == (
        comparable((theirs[0]["status"], theirs[0]["headers"], theirs[1]["body"]))
    )
    assert ours[1:] == theirs[1:]
