"""ConnectorError carries the platform's answer (status, headers, raw body), so the
connectors refine social.http's mapping from it without keeping the response
through an httpx.Auth wrapper."""

import json
from pathlib import Path

import pytest

from social import http as social_http
from social.connectors.base import ConnectorError
from tests.social.fakeserver import FakeServer

CONNECTORS = Path(__file__).resolve().parents[2] / "social" / "connectors"


def test_the_error_keeps_the_answers_status_headers_and_body(
    fake_http: FakeServer,
) -> None:
    fake_http.route(
        "POST",
        "/limited",
        (429, {"X-RateLimit-Reset": "2026-12-05T23:00:00Z"}, {"error": "slow down"}),
    )
    with pytest.raises(ConnectorError) as caught:
        social_http.request("POST", fake_http.base_url + "/limited", json={})
    error = caught.value
    assert error.status == 429
    assert error.headers["x-ratelimit-reset"] == "2026-12-05T23:00:00Z"
    assert error.headers["X-RateLimit-Reset"] == "2026-12-05T23:00:00Z"
    assert json.loads(error.body) == {"error": "slow down"}
    assert error.json() == {"error": "slow down"}
    assert (error.message, error.permanent, error.retry_after) == (
        "slow down",
        False,
        None,
    )


def test_a_network_error_has_no_answer(fake_http: FakeServer) -> None:
    with pytest.raises(ConnectorError) as caught:
        social_http.request("GET", "http://127.0.0.1:9/nothing-listens")
    error = caught.value
    assert (error.status, dict(error.headers), error.body, error.json()) == (
        None,
        {},
        b"",
        None,
    )


def test_a_body_that_is_not_json_reads_as_none() -> None:
    error = ConnectorError("bad", status=502, body=b"<html>bad gateway</html>")
    assert error.json() is None
    assert error.body == b"<html>bad gateway</html>"


def test_no_connector_keeps_answers_through_an_httpx_auth() -> None:
    sources = {path.name: path.read_text() for path in CONNECTORS.glob("*.py")}
    assert [name for name, text in sources.items() if "httpx.Auth" in text] == []
