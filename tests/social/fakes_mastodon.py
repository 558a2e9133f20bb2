"""A fake Mastodon instance on the loopback fake server.

It registers apps (remembering the redirect address), shows the consent page
(`/oauth/authorize`, tests/social/fakeserver.FakeConsent), runs the OAuth code flow
with PKCE (S256) checks, revokes tokens (`/oauth/revoke`), serves mention
notifications from tests/social/fixtures/mastodon/ with since_id/max_id paging and
Link headers, answers status, context and account lookups, and creates statuses,
replaying the stored status for a repeated `Idempotency-Key`. Every API answer
carries `X-RateLimit-*` headers (the reset is an ISO time, as on Mastodon).
`fail(status)` makes every call answer 401, 429, 5xx or another error.
"""

import base64
import copy
import hashlib
import html
import itertools
import json
import re
from pathlib import Path
from typing import Any

from social.connectors.base import AccountRef, AppSecrets
from tests.social.fakeserver import (
    FakeConsent,
    FakeRequest,
    FakeServer,
    Handler,
    Reply,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mastodon"
REDIRECT_URI = "https://earshot.example/t/acme/social/connect/mastodon/complete/"
ACCESS_TOKEN = "mastodon-token-1"
CODE = "mastodon-auth-code"
CODE_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
BRAND_ID = "109"
SCOPES = "read:accounts read:notifications read:statuses write:statuses"
CREATED_AT = "2026-01-02T03:05:00.000Z"
RATE_LIMIT_RESET = "2026-01-02T03:10:00.000Z"
MAX_STATUS_LENGTH = 500

Json = dict[str, Any]
# The SSRF guard (tenants/netguard.py) lets Earshot reach this fake on 127.0.0.1 the
# way webhook tests reach their loopback receivers: plain http and 127.0.0.1/32.
LOOPBACK_INSTANCE: dict[str, Any] = {
    "MASTODON_ALLOW_INSECURE": True,
    "WEBHOOKS_ALLOWED_PRIVATE_NETS": ["127.0.0.1/32"],
}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def challenge_for(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def rendered(text: str) -> str:
    """Status text as Mastodon renders it: mentions as h-cards showing @username."""

    def mention(match: re.Match[str]) -> str:
        username, _, domain = match.group(1).partition("@")
        href = f"https://{domain or 'social.example'}/@{username}"
        return (
            f'<span class="h-card" translate="no"><a href="{href}" '
            f'class="u-url mention">@<span>{username}</span></a></span>'
        )

    escaped = html.escape(text, quote=False)
    return (
        "<p>" + re.sub(r"(?<![\w@])@([\w.]+(?:@[\w.-]+)?)", mention, escaped) + "</p>"
    )


def _fixed(body: Any) -> Handler:
    return lambda request: (200, {}, body)


class FakeMastodon:
    """One Mastodon instance; tests read `server.requests` and `created`."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.failure: Reply | None = None
        self.page_size = 40
        app = load("app.json")
        self.client_id: str = app["client_id"]
        self.client_secret: str = app["client_secret"]
        self.code_challenge = challenge_for(CODE_VERIFIER)
        # The redirect address of the registered app (REDIRECT_URI until an app is
        # registered through POST /api/v1/apps).
        self.redirect_uri = REDIRECT_URI
        self.registrations: list[Json] = []
        self.consent = FakeConsent(self.client_id, CODE)
        self.revoked: list[str] = []
        self.notifications: list[Json] = load("notifications.json")
        self.statuses: dict[str, Json] = {}
        self.accounts: dict[str, Json] = {BRAND_ID: load("verify_credentials.json")}
        self.created: list[Json] = []
        self.by_idempotency_key: dict[str, Json] = {}
        self._ids = itertools.count(1200)
        for notification in self.notifications:
            self.accounts.setdefault(
                notification["account"]["id"], notification["account"]
            )
            self._add_status(notification["status"])
        for status in load("statuses.json"):
            self._add_status(status)
        self._routes()

    def _routes(self) -> None:
        self.server.route("POST", "/api/v1/apps", self._guard(self._register_app))
        self.server.route("GET", "/oauth/authorize", self._guard(self._authorize))
        self.server.route("POST", "/oauth/token", self._guard(self._token))
        self.server.route("POST", "/oauth/revoke", self._guard(self._revoke))
        api: dict[tuple[str, str], Handler] = {
            ("GET", "/api/v1/accounts/verify_credentials"): lambda request: (
                200,
                {},
                self.accounts[BRAND_ID],
            ),
            ("GET", "/api/v1/notifications"): self._notifications,
            ("POST", "/api/v1/statuses"): self._create_status,
            ("GET", f"/api/v1/accounts/{BRAND_ID}/statuses"): self._brand_statuses,
        }
        for (method, path), handler in api.items():
            self._route(method, path, handler)
        for account_id, account in self.accounts.items():
            if account_id != BRAND_ID:
                self._route("GET", f"/api/v1/accounts/{account_id}", _fixed(account))

    def _route(self, method: str, path: str, handler: Handler) -> None:
        self.server.route(method, path, self._guard(self._api(handler)))

    def fail(
        self, status: int, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        """Answer every call with `status`, Mastodon's headers and error body."""
        defaults = {
            429: {
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": RATE_LIMIT_RESET,
            }
        }
        messages = {
            401: "The access token is invalid",
            403: "This action is not allowed",
            404: "Record not found",
            429: "Too many requests",
            500: "We're sorry, but something went wrong on our end.",
            503: "Service Unavailable",
        }
        self.failure = (
            status,
            headers if headers is not None else defaults.get(status, {}),
            body if body is not None else {"error": messages[status]},
        )

    def account(self, **overrides: Any) -> AccountRef:
        values: dict[str, Any] = {
            "platform": "mastodon",
            "external_id": BRAND_ID,
            "handle": "brand",
            "credentials": {"access_token": ACCESS_TOKEN, "scope": SCOPES},
            "base_url": self.server.base_url,
        }
        return AccountRef(**{**values, **overrides})

    def app(self) -> AppSecrets:
        return AppSecrets(
            client_id=self.client_id,
            client_secret=self.client_secret,
            base_url=self.server.base_url,
        )

    def _guard(self, handler: Handler) -> Handler:
        def guarded(request: FakeRequest) -> Reply:
            if self.failure is not None:
                return self.failure
            return handler(request)

        return guarded

    def _api(self, handler: Handler) -> Handler:
        def authorized(request: FakeRequest) -> Reply:
            if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                return 401, {}, {"error": "The access token is invalid"}
            status, headers, body = handler(request)
            limits = {
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "297",
                "X-RateLimit-Reset": RATE_LIMIT_RESET,
            }
            return status, {**limits, **headers}, body

        return authorized

    def _add_status(self, status: Json) -> None:
        status_id = status["id"]
        self.statuses[status_id] = status
        self._route("GET", f"/api/v1/statuses/{status_id}", _fixed(status))
        self._route(
            "GET",
            f"/api/v1/statuses/{status_id}/context",
            lambda request: (
                200,
                {},
                {"ancestors": self._ancestors(status), "descendants": []},
            ),
        )

    def _ancestors(self, status: Json) -> list[Json]:
        chain: list[Json] = []
        parent = self.statuses.get(status.get("in_reply_to_id") or "")
        while parent is not None:
            chain.insert(0, parent)
            parent = self.statuses.get(parent.get("in_reply_to_id") or "")
        return chain

    def _register_app(self, request: FakeRequest) -> Reply:
        body = request.json()
        if not body.get("client_name") or not body.get("redirect_uris"):
            return 422, {}, {"error": "Validation failed: Name can't be blank"}
        self.registrations.append(body)
        self.redirect_uri = body["redirect_uris"]
        app = load("app.json")
        app.update(
            name=body["client_name"],
            website=body.get("website"),
            scopes=body["scopes"].split(),
            redirect_uri=body["redirect_uris"],
            redirect_uris=[body["redirect_uris"]],
        )
        return 200, {}, app

    def _authorize(self, request: FakeRequest) -> Reply:
        """The consent page; the challenge it was shown is what /oauth/token checks."""
        query = {key: values[0] for key, values in request.query.items()}
        if query.get("redirect_uri") != self.redirect_uri:
            return 400, {}, {"error": "invalid_redirect_uri"}
        reply = self.consent.answer(request)
        if self.consent.code_challenge:
            self.code_challenge = self.consent.code_challenge
        return reply

    def _client_refused(self, form: dict[str, str]) -> Reply | None:
        if (form.get("client_id"), form.get("client_secret")) == (
            self.client_id,
            self.client_secret,
        ):
            return None
        return (
            401,
            {},
            {
                "error": "invalid_client",
                "error_description": "Client authentication failed due to "
                "unknown client, no client authentication included, or "
                "unsupported authentication method.",
            },
        )

    def _revoke(self, request: FakeRequest) -> Reply:
        form = request.form()
        refused = self._client_refused(form)
        if refused is not None:
            return refused
        self.revoked.append(form.get("token", ""))
        return 200, {}, {}

    def _token(self, request: FakeRequest) -> Reply:
        form = request.form()
        refused = self._client_refused(form)
        if refused is not None:
            return refused
        verifier = form.get("code_verifier", "")
        if (
            form.get("grant_type") != "authorization_code"
            or form.get("code") != CODE
            or form.get("redirect_uri") != self.redirect_uri
            or challenge_for(verifier) != self.code_challenge
        ):
            return (
                400,
                {},
                {
                    "error": "invalid_grant",
                    "error_description": "The provided authorization grant is "
                    "invalid, expired, revoked, does not match the redirection URI "
                    "used in the authorization request, or was issued to another "
                    "client.",
                },
            )
        return (
            200,
            {},
            {
                "access_token": ACCESS_TOKEN,
                "token_type": "Bearer",
                "scope": form.get("scope", "read"),
                "created_at": 1767323045,
            },
        )

    def _notifications(self, request: FakeRequest) -> Reply:
        query = {key: values[0] for key, values in request.query.items()}
        types = request.query.get("types[]", [])
        since, below = int(query.get("since_id", 0)), int(query.get("max_id", 10**18))
        limit = min(int(query.get("limit", 40)), self.page_size)
        matching = [
            n
            for n in self.notifications
            if (not types or n["type"] in types) and since < int(n["id"]) < below
        ]
        page = sorted(matching, key=lambda n: -int(n["id"]))[:limit]
        if not page:
            return 200, {}, []
        base = f"{self.server.base_url}/api/v1/notifications"
        kept = "".join(f"&types%5B%5D={kind}" for kind in types) + f"&limit={limit}"
        link = (
            f'<{base}?max_id={page[-1]["id"]}{kept}>; rel="next", '
            f'<{base}?min_id={page[0]["id"]}{kept}>; rel="prev"'
        )
        return 200, {"Link": link}, page

    def _create_status(self, request: FakeRequest) -> Reply:
        key = request.headers.get("idempotency-key", "")
        if key in self.by_idempotency_key:
            return 200, {}, self.by_idempotency_key[key]
        body = request.json()
        text = body.get("status", "")
        if len(text) > MAX_STATUS_LENGTH:
            return 422, {}, load("validation_error.json")
        parent = body.get("in_reply_to_id")
        if parent and parent not in self.statuses:
            return 404, {}, {"error": "Record not found"}
        status_id = str(next(self._ids))
        status = {
            "id": status_id,
            "created_at": CREATED_AT,
            "in_reply_to_id": parent,
            "in_reply_to_account_id": (
                self.statuses[parent]["account"]["id"] if parent else None
            ),
            "visibility": body.get("visibility", "public"),
            "language": "en",
            "spoiler_text": "",
            "url": f"https://social.example/@brand/{status_id}",
            "content": rendered(text),
            "account": copy.deepcopy(self.accounts[BRAND_ID]),
            "mentions": [],
        }
        self.created.append(status)
        self._add_status(status)
        if key:
            self.by_idempotency_key[key] = status
        return 200, {}, status

    def _brand_statuses(self, request: FakeRequest) -> Reply:
        mine = [s for s in self.statuses.values() if s["account"]["id"] == BRAND_ID]
        return 200, {}, sorted(mine, key=lambda s: -int(s["id"]))
