"""The websocket Origin check (helpdesk/websocket_guard.py) on every websocket route.

Only the site's exact origins (scheme, host and port) may open a live stream; a
refused handshake is accepted and closed at once with its 44xx code, before any
group is joined or any frame sent. Runs on the in-memory channel layer, whose
groups the tests can read.
"""

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from helpdesk import events
from helpdesk.consumers import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND
from helpdesk.presence import presence_store
from helpdesk.routing import websocket_urlpatterns
from helpdesk.websocket_guard import allowed_origins, normalise_origin, origin_allowed
from tenants.models import Tenant, User
from tests.helpdesk.live import WAIT, asgi_application, online, session_headers

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES = [str(route.pattern) for route in websocket_urlpatterns]


def route_path(route: str, slug: str) -> str:
    return "/" + route.replace("<slug:tenant_slug>", slug)


def joined(tenant: Tenant) -> set[str]:
    groups: dict[str, Any] = get_channel_layer().groups
    return set(groups.get(events.inbox_group(tenant.pk), {}))


async def handshake(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """What the server answers a handshake: the first frame after accept, or the
    close that refuses it."""
    socket = WebsocketCommunicator(asgi_application(), path, headers=headers)
    try:
        connected, _ = await socket.connect(timeout=WAIT)
        assert connected
        first: dict[str, Any] = await socket.receive_output(timeout=WAIT)
        return first
    finally:
        await socket.disconnect()


def test_every_route_is_covered() -> None:
    assert ROUTES == ["ws/t/<slug:tenant_slug>/"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "origin", [b"http://testserver", b"http://testserver:80", b"HTTP://TestServer"]
)
def test_the_sites_own_origin_is_accepted(
    route: str, origin: bytes, tenant: Tenant, agent: User
) -> None:
    path = route_path(route, tenant.slug)
    first = async_to_sync(handshake)(path, session_headers(agent, origin=origin))

    assert first == {"type": "websocket.send", "text": json.dumps(online(agent))}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "origin",
    [
        b"https://testserver",  # same host, wrong scheme
        b"http://testserver:8000",  # same host, wrong port
        b"http://testserver.evil.example",
        b"http://evil.example",
        b"null",
        b"http://testserver/inbox",
        b"",
        None,
    ],
)
def test_any_other_origin_is_refused_before_anything_happens(
    route: str, origin: bytes | None, tenant: Tenant, agent: User
) -> None:
    path = route_path(route, tenant.slug)
    first = async_to_sync(handshake)(path, session_headers(agent, origin=origin))

    assert first == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    assert joined(tenant) == set()
    assert presence_store().online(tenant.pk) == set()


@pytest.mark.parametrize("route", ROUTES)
def test_a_member_of_another_workspace_is_refused_from_the_right_origin(
    route: str, tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    path = route_path(route, tenant.slug)
    first = async_to_sync(handshake)(path, session_headers(outsider))

    assert first == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}
    assert joined(tenant) == set()
    assert presence_store().online(tenant.pk) == set()


@pytest.mark.parametrize("route", ROUTES)
def test_trusted_origins_and_an_explicit_list(
    route: str, tenant: Tenant, agent: User
) -> None:
    path = route_path(route, tenant.slug)
    app = b"https://app.earshot.example"
    with override_settings(CSRF_TRUSTED_ORIGINS=["https://*.earshot.example"]):
        trusted = async_to_sync(handshake)(path, session_headers(agent, origin=app))
    with override_settings(WEBSOCKET_ALLOWED_ORIGINS=["https://app.earshot.example"]):
        listed = async_to_sync(handshake)(path, session_headers(agent, origin=app))
        site = async_to_sync(handshake)(path, session_headers(agent))

    assert trusted["type"] == "websocket.send"
    assert listed["type"] == "websocket.send"
    # An explicit list replaces SITE_URL's origin.
    assert site == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("https://Earshot.example:443", "https://earshot.example"),
        ("http://earshot.example:80", "http://earshot.example"),
        ("http://earshot.example:8000", "http://earshot.example:8000"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("null", None),
        ("file://", None),
        ("ws://earshot.example", None),
        ("https://user@earshot.example", None),
        ("https://earshot.example/path", None),
        ("https://earshot.example:99999", None),
    ],
)
def test_origins_are_compared_normalised(text: str, normal: str | None) -> None:
    assert normalise_origin(text) == normal


def test_a_wildcard_matches_subdomains_with_the_same_scheme_and_port() -> None:
    allowed = ["https://*.earshot.example"]

    assert origin_allowed("https://a.earshot.example", allowed)
    assert origin_allowed("https://a.b.earshot.example:443", allowed)
    assert not origin_allowed("https://earshot.example", allowed)
    assert not origin_allowed("http://a.earshot.example", allowed)
    assert not origin_allowed("https://a.earshot.example:8443", allowed)
    assert not origin_allowed("https://evilearshot.example", allowed)


def test_the_demo_on_a_loopback_name_allows_its_twin_only() -> None:
    with override_settings(SITE_URL="http://127.0.0.1:8000", CSRF_TRUSTED_ORIGINS=[]):
        allowed = allowed_origins()

    assert origin_allowed("http://localhost:8000", allowed)
    assert origin_allowed("http://127.0.0.1:8000", allowed)
    assert not origin_allowed("http://localhost:8001", allowed)
    assert not origin_allowed("https://localhost:8000", allowed)
