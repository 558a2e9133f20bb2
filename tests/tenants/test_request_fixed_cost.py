"""The fixed cost of an API request: what was cut keeps the answers the same.

- The CSP header of a response whose nonce was not used is built once per
  configuration (tenants.middleware.ContentSecurityPolicyMiddleware); every
  answer's headers are those of Django's middleware.
- DRF's content negotiation answers a plain JSON request at once
  (tenants.api_negotiation); every other Accept header or format goes to DRF's
  code, and the choice is DRF's either way.
- New request ids come from a per-process random prefix and a counter
  (helpdesk.observability.logs): 32 hex digits, unique, a new prefix after fork.
"""

import os
import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import csp
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import (
    BaseRenderer,
    BrowsableAPIRenderer,
    JSONRenderer,
    TemplateHTMLRenderer,
)
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from helpdesk.observability import logs
from tenants import middleware
from tenants.api_negotiation import ContentNegotiation
from tenants.models import Tenant, User
from tests.api_clients import base, token_client

DJANGOS_CSP = "django.middleware.csp.ContentSecurityPolicyMiddleware"
OURS_CSP = "tenants.middleware.ContentSecurityPolicyMiddleware"
HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")


def _with_djangos_csp() -> Any:
    return override_settings(
        MIDDLEWARE=[DJANGOS_CSP if m == OURS_CSP else m for m in settings.MIDDLEWARE]
    )


def _settings_policy() -> str:
    config: Any = settings.SECURE_CSP
    return csp.build_policy(config)


def _csp(response: Any) -> dict[str, str | None]:
    return {name: response.get(name) for name in HEADERS}


# --- CSP ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_csp_headers_are_those_of_djangos_middleware(
    tenant: Tenant, owner: User
) -> None:
    api = token_client(tenant, owner, "read")
    browser = Client()
    browser.force_login(owner)
    calls = [
        (api, f"{base(tenant)}/ping/"),  # no nonce
        (api, f"{base(tenant)}/no-such-thing/"),  # 404, no nonce
        (browser, "/api/docs/"),  # the view's own config (csp_override)
        (browser, f"/t/{tenant.slug}/"),  # the inbox page uses the nonce
    ]
    ours = [_csp(client.get(path)) for client, path in calls]
    with _with_djangos_csp():
        djangos = [_csp(client.get(path)) for client, path in calls]

    assert OURS_CSP in settings.MIDDLEWARE
    assert DJANGOS_CSP not in settings.MIDDLEWARE
    assert ours[0]["Content-Security-Policy"] == _settings_policy()
    assert "'nonce-" in str(ours[3]["Content-Security-Policy"])
    assert "'nonce-" not in str(ours[2]["Content-Security-Policy"])
    # A nonce differs per response; the rest is the same.
    assert _without_nonces(ours) == _without_nonces(djangos)


def _without_nonces(answers: list[dict[str, str | None]]) -> list[Any]:
    nonce = re.compile(r"'nonce-[^']+'")
    return [
        {
            name: None if value is None else nonce.sub("N", value)
            for name, value in a.items()
        }
        for a in answers
    ]


@pytest.mark.django_db(transaction=True)
def test_a_nonce_free_policy_is_built_once_and_follows_its_config(
    tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []

    def counting(config: Any, nonce: Any = None) -> str:
        built.append(nonce)
        return csp.build_policy(config, nonce)

    monkeypatch.setattr(middleware, "build_policy", counting)
    monkeypatch.setattr(middleware, "_policies", {})
    client = token_client(tenant, owner, "read")
    ping = f"{base(tenant)}/ping/"

    first = client.get(ping)["Content-Security-Policy"]
    second = client.get(ping)["Content-Security-Policy"]
    assert first == second == _settings_policy()
    assert built == [None]

    other = {"default-src": [csp.CSP.NONE]}
    with override_settings(SECURE_CSP=other, SECURE_CSP_REPORT_ONLY=other):
        changed = client.get(ping)
    assert _csp(changed) == dict.fromkeys(HEADERS, "default-src 'none'")

    # A config changed in place is built afresh.
    with override_settings(SECURE_CSP={"default-src": [csp.CSP.SELF]}):
        assert client.get(ping)["Content-Security-Policy"] == "default-src 'self'"
        settings.SECURE_CSP["img-src"] = ["data:"]
        assert (
            client.get(ping)["Content-Security-Policy"]
            == "default-src 'self'; img-src data:"
        )
    assert client.get(ping)["Content-Security-Policy"] == first
    assert len(built) == 4


# --- content negotiation ------------------------------------------------------------

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "*/*; q=0.5, application/json",
    "text/html",
    "text/html, */*",
    "",
]
RENDERER_SETS: list[list[BaseRenderer]] = [
    [JSONRenderer()],
    [JSONRenderer(), BrowsableAPIRenderer()],
    [BrowsableAPIRenderer(), JSONRenderer()],
    [TemplateHTMLRenderer(), JSONRenderer()],
]


def _choice(
    negotiator: DefaultContentNegotiation,
    renderers: list[BaseRenderer],
    accept: str | None,
    query: str,
    suffix: str | None,
) -> Any:
    headers: dict[str, Any] = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/x/{query}", **headers))
    try:
        renderer, media_type = negotiator.select_renderer(request, renderers, suffix)
    except Exception as error:  # the refusal is part of the answer
        return type(error).__name__
    return renderers.index(renderer), media_type


@pytest.mark.parametrize("renderers", RENDERER_SETS)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize(
    ("query", "suffix"),
    [
        ("", None),
        ("?status=open", None),
        ("?format=json", None),
        ("?format=api", None),
        ("?status=open&format=api", None),
        ("", "json"),
    ],
)
def test_negotiation_chooses_as_drf_does(
    renderers: list[BaseRenderer], accept: str | None, query: str, suffix: str | None
) -> None:
    ours = _choice(ContentNegotiation(), renderers, accept, query, suffix)
    drfs = _choice(DefaultContentNegotiation(), renderers, accept, query, suffix)

    assert ours == drfs


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_a_plain_json_request_is_answered_without_parsing_accept(
    accept: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the Accept header was parsed")

    monkeypatch.setattr(ContentNegotiation, "_get_parsed_accept_list", refuse)
    renderer = JSONRenderer()
    headers: dict[str, Any] = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/x/", **headers))

    chosen = ContentNegotiation().select_renderer(request, [renderer])

    assert chosen == (renderer, "application/json")


def test_the_api_negotiates_with_ours() -> None:
    from rest_framework.settings import api_settings

    chosen: Any = api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS
    assert chosen is ContentNegotiation


@pytest.mark.django_db(transaction=True)
def test_api_answers_keep_their_content_type(tenant: Tenant, owner: User) -> None:
    client = token_client(tenant, owner, "read")
    ping = f"{base(tenant)}/ping/"

    plain = client.get(ping)
    refused = client.get(ping, HTTP_ACCEPT="text/html")

    assert (plain.status_code, plain["Content-Type"]) == (200, "application/json")
    assert refused.status_code == 406
    assert refused.json()["code"] == "not_acceptable"


# --- request ids --------------------------------------------------------------------


def test_new_request_ids_are_unique_hex_with_a_process_prefix() -> None:
    ids = [logs.new_request_id() for _ in range(1000)]

    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == 1000
    assert {i[:16] for i in ids} == {logs._id_prefix}


# The child only writes to a pipe and leaves (os._exit): no lock it could inherit.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_draws_its_own_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, logs.new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    mine = logs.new_request_id()

    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child[:16] != mine[:16]
    assert child[16:] == f"{0:016x}"


# --- request.headers ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_token_call_reads_its_headers_without_building_request_headers(
    tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.http import request as django_request

    client = token_client(tenant, owner, "read")
    ping = f"{base(tenant)}/ping/"
    built: list[object] = []
    build = django_request.HttpHeaders.__init__

    def counting(self: Any, environ: Any) -> None:
        built.append(self)
        build(self, environ)

    monkeypatch.setattr(django_request.HttpHeaders, "__init__", counting)

    given = client.get(ping, HTTP_X_REQUEST_ID="edge-7f3a.01:x")
    generated = client.get(ping)
    bad_token = APIClient().get(ping, HTTP_AUTHORIZATION="Bearer esk_nope")

    assert given.status_code == generated.status_code == 200
    assert given["X-Request-ID"] == "edge-7f3a.01:x"
    assert re.fullmatch(r"[0-9a-f]{32}", generated["X-Request-ID"])
    assert bad_token.status_code == 404
    assert built == []
