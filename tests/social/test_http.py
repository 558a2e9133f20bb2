"""social/http.py maps platform answers onto ConnectorError, against a real server."""

import time

import pytest

from social import http as social_http
from social.connectors.base import ConnectorError
from tests.social.fakeserver import FakeServer


def test_outbound_http_is_blocked_without_a_fake() -> None:
    with pytest.raises(social_http.OutboundBlocked):
        social_http.request("GET", "https://api.x.com/2/users/me")


def test_a_success_returns_the_response_and_sends_the_user_agent(
    fake_http: FakeServer,
) -> None:
    fake_http.route("GET", "/ok", (200, {}, {"id": "1"}))
    response = social_http.request("GET", fake_http.base_url + "/ok")
    assert response.json() == {"id": "1"}
    assert fake_http.requests[0].headers["user-agent"].startswith("Earshot/")


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (401, {}, {"detail": "Unauthorized"}, ("Unauthorized", True, True, None)),
        (
            429,
            {"Retry-After": "30"},
            {"title": "Too Many Requests"},
            ("Too Many Requests", False, False, 30.0),
        ),
        (
            503,
            {},
            {"error": "Service Unavailable"},
            ("Service Unavailable", False, False, None),
        ),
        (
            403,
            {},
            {"detail": "You are not allowed to create a Tweet with duplicate content."},
            (
                "You are not allowed to create a Tweet with duplicate content.",
                True,
                False,
                None,
            ),
        ),
        (400, {}, b"plain text problem", ("plain text problem", True, False, None)),
    ],
)
def test_errors_map_to_connector_errors(
    fake_http: FakeServer,
    status: int,
    headers: dict[str, str],
    body: object,
    expected: tuple[str, bool, bool, float | None],
) -> None:
    fake_http.route("POST", "/fail", (status, headers, body))
    with pytest.raises(ConnectorError) as raised:
        social_http.request("POST", fake_http.base_url + "/fail", json={})
    error = raised.value
    assert (error.message, error.permanent, error.auth, error.retry_after) == expected
    assert error.status == status


def test_x_rate_limit_reset_is_turned_into_seconds(fake_http: FakeServer) -> None:
    reset = int(time.time()) + 120
    fake_http.route("GET", "/limited", (429, {"x-rate-limit-reset": str(reset)}, {}))
    with pytest.raises(ConnectorError) as raised:
        social_http.request("GET", fake_http.base_url + "/limited")
    assert raised.value.retry_after is not None
    assert 115 <= raised.value.retry_after <= 120


def test_a_dead_server_is_a_transient_error(fake_http: FakeServer) -> None:
    with pytest.raises(ConnectorError, match="Could not reach the platform") as raised:
        social_http.request("GET", "http://127.0.0.1:9/nothing")
    assert raised.value.permanent is False
