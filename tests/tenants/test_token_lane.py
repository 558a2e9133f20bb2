"""The token lane (tenants/middleware.py): token API calls skip the browser's
session, CSRF, auth and messages middleware; everything else runs them as before.

Owner (olivia), a member's browser session and an outsider (charlie) each appear;
denials assert that nothing changed.
"""

import re
from typing import Any

import pytest
from django.conf import settings
from django.middleware.csrf import CSRF_SECRET_LENGTH
from django.test import Client, RequestFactory, override_settings
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from tenants.context import tenant_context
from tenants.middleware import token_api_request
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, session, token_client

pytestmark = pytest.mark.django_db(transaction=True)

DJANGOS = {
    "tenants.middleware.SessionMiddleware": (
        "django.contrib.sessions.middleware.SessionMiddleware"
    ),
    "tenants.middleware.CsrfViewMiddleware": (
        "django.middleware.csrf.CsrfViewMiddleware"
    ),
    "tenants.middleware.AuthenticationMiddleware": (
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    ),
    "tenants.middleware.MessageMiddleware": (
        "django.contrib.messages.middleware.MessageMiddleware"
    ),
}


def brand_names(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return sorted(Brand.objects.values_list("name", flat=True))


@pytest.mark.parametrize(
    ("path", "authorization", "expected"),
    [
        ("/api/v1/t/acme/ping/", "Bearer esk_x", True),
        ("/api/v1/t/acme/conversations/1/", "token esk_x", True),
        ("/api/v1/t/acme/ping/", "Bearer ", False),
        ("/api/v1/t/acme/ping/", "Basic b2xpdmlh", False),
        ("/api/v1/t/acme/ping/", None, False),
        ("/t/acme/", "Bearer esk_x", False),
        ("/api/schema/", "Bearer esk_x", False),
        ("/accounts/login/", "Bearer esk_x", False),
    ],
)
def test_which_requests_take_the_lane(
    path: str, authorization: str | None, expected: bool
) -> None:
    factory = RequestFactory()
    request = (
        factory.get(path, HTTP_AUTHORIZATION=authorization)
        if authorization
        else factory.get(path)
    )

    assert token_api_request(request) is expected


def test_a_session_post_without_the_csrf_token_is_still_refused(
    tenant: Tenant, owner: User
) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    before = brand_names(tenant)

    response = client.post(f"{base(tenant)}/brands/", {"name": "Sneaky"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]
    assert brand_names(tenant) == before


def test_a_session_post_with_the_csrf_token_works_as_before(
    tenant: Tenant, owner: User
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    # What the browser holds after any page: the CSRF cookie, echoed in a header.
    token = get_random_string(CSRF_SECRET_LENGTH)
    client.cookies[settings.CSRF_COOKIE_NAME] = token

    response = client.post(
        f"{base(tenant)}/brands/",
        {"name": "Second"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )

    assert response.status_code == 201
    assert "Second" in brand_names(tenant)


def test_a_token_call_ignores_a_session_cookie_and_sets_none(
    tenant: Tenant, owner: User, outsider: User, other_tenant: Tenant
) -> None:
    client = token_client(tenant, owner, "admin")
    # The outsider's browser session rides along: the token decides, and the
    # session is neither read nor touched.
    browser = session(outsider)
    client.cookies = browser.cookies
    before = brand_names(tenant)

    listed = client.get(f"{base(tenant)}/brands/")
    created = client.post(
        f"{base(tenant)}/brands/", {"name": "By token"}, format="json"
    )
    foreign = client.get(f"{base(other_tenant)}/brands/")

    assert listed.status_code == 200
    assert created.status_code == 201
    assert foreign.status_code == 404
    assert brand_names(tenant) == sorted([*before, "By token"])
    for response in (listed, created, foreign):
        assert "Set-Cookie" not in response
        assert "Cookie" not in response.get("Vary", "")


def test_a_bad_token_with_a_members_session_is_still_refused(
    tenant: Tenant, owner: User
) -> None:
    client = session(owner)
    client.credentials(HTTP_AUTHORIZATION="Bearer esk_not_a_token")
    before = brand_names(tenant)

    read = client.get(f"{base(tenant)}/brands/")
    write = client.post(f"{base(tenant)}/brands/", {"name": "Nope"}, format="json")

    assert (read.status_code, write.status_code) == (404, 404)
    assert read.json()["code"] == "not_found"
    assert brand_names(tenant) == before


RANDOM = re.compile(rb"(nonce-|nonce=\"|csrf-token\" content=\"|value=\")[-\w]+")


def _answer(client: APIClient, method: str, path: str, body: Any) -> tuple[Any, ...]:
    """Status, headers, body and cookies set, less the request id, the CSP nonce
    and the (masked, so always different) CSRF token in a page."""
    response = getattr(client, method)(path, body, format="json")
    headers = sorted(
        (name, RANDOM.sub(rb"\1*", value.encode()))
        for name, value in response.items()
        if name != "X-Request-ID"
    )
    page = RANDOM.sub(rb"\1*", response.content)
    return response.status_code, headers, page, sorted(response.cookies)


def test_token_answers_are_those_of_djangos_middleware(
    tenant: Tenant, owner: User
) -> None:
    client = token_client(tenant, owner, "read")
    api = base(tenant)
    calls = [
        ("get", f"{api}/ping/", None),
        ("get", f"{api}/ping", None),  # CommonMiddleware's slash redirect
        ("get", f"{api}/brands/", None),
        ("post", f"{api}/brands/", {"name": "Scope"}),  # read scope: 403
        ("delete", f"{api}/ping/", None),  # read scope: 403
        ("get", f"{api}/conversations/?status=nope", None),  # 400
        ("get", f"{api}/no-such-thing/", None),
        ("get", "/api/v1/t/no-such-workspace/ping/", None),
    ]
    lane = [_answer(client, *call) for call in calls]
    with override_settings(MIDDLEWARE=[DJANGOS.get(m, m) for m in settings.MIDDLEWARE]):
        djangos = [_answer(client, *call) for call in calls]

    assert [answer[0] for answer in lane] == [200, 301, 200, 403, 403, 400, 404, 404]
    assert lane == djangos
    assert brand_names(tenant) == ["Acme Air"]


def test_the_lanes_classes_stand_in_for_djangos() -> None:
    # Django's admin checks look for subclasses of these in MIDDLEWARE.
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.messages.middleware import MessageMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.middleware.csrf import CsrfViewMiddleware
    from django.utils.module_loading import import_string

    ours = {name: import_string(name) for name in DJANGOS}
    assert issubclass(ours["tenants.middleware.SessionMiddleware"], SessionMiddleware)
    assert issubclass(ours["tenants.middleware.CsrfViewMiddleware"], CsrfViewMiddleware)
    assert issubclass(
        ours["tenants.middleware.AuthenticationMiddleware"], AuthenticationMiddleware
    )
    assert issubclass(ours["tenants.middleware.MessageMiddleware"], MessageMiddleware)
    assert set(DJANGOS) <= set(settings.MIDDLEWARE)
    assert not set(DJANGOS.values()) & set(settings.MIDDLEWARE)
