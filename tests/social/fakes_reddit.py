"""A fake Reddit on the loopback fake server: www.reddit.com's OAuth endpoints (the
consent page, tests/social/fakeserver.FakeConsent; tokens; revocation) and
oauth.reddit.com's API on one host (the connector's base URLs point both at it).

It checks what Reddit checks (Basic client auth on the token endpoint, the bearer
token on API calls, `api_type=json` on writes), serves the captured listings from
tests/social/fixtures/reddit/ with `after` paging, records created comments and
messages, and sends `X-Ratelimit-*` headers. `fail(status)` makes every call answer
401, 403, 429 (with Reddit's rate-limit headers) or 5xx.
"""

import base64
import copy
import itertools
import json
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

FIXTURES = Path(__file__).parent / "fixtures" / "reddit"
CLIENT_ID = "earshot-reddit-app"
CLIENT_SECRET = "reddit-app-secret"
CODE = "reddit-auth-code"
REDIRECT_URI = "https://earshot.example/t/acme/social/connect/reddit/complete/"
ACCESS_TOKEN = "reddit-access-1"
REFRESHED_TOKEN = "reddit-access-2"
REFRESH_TOKEN = "reddit-refresh-1"
HANDLE = "earshot_brand"
ACCOUNT_ID = "t2_1w72abc"
SCOPE = "identity read privatemessages submit history"
UNKNOWN_USER = "ghost_user"
NOW = 1767323100.0

Thing = dict[str, Any]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def children(listing: dict[str, Any]) -> list[Thing]:
    return [child["data"] for child in listing["data"]["children"]]


def listing(kind: str, things: list[Thing], after: str | None = None) -> Any:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "before": None,
            "dist": len(things),
            "modhash": None,
            "geo_filter": "",
            "children": [{"kind": kind, "data": thing} for thing in things],
        },
    }


class FakeReddit:
    """Reddit's OAuth and API on one FakeServer; tests read `server.requests`."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.failure: Reply | None = None
        self.access_token = ACCESS_TOKEN
        self.ratelimit = {
            "x-ratelimit-used": "2",
            "x-ratelimit-remaining": "598.0",
            "x-ratelimit-reset": "412",
        }
        self.inbox_pages: dict[str, Any] = {
            "": load("inbox_page1.json"),
            "t4_2r17c9a": load("inbox_page2.json"),
        }
        self.mentions: Any = load("mentions.json")
        self.search_results: Any = load("search.json")
        self.comments: list[Thing] = children(load("user_comments.json"))
        self.sent: list[Thing] = children(load("sent.json"))
        # Set to an envelope (e.g. the RATELIMIT fixture) to refuse the next comment.
        self.comment_refusal: Any = None
        self._ids = itertools.count(100)
        self.consent = FakeConsent(CLIENT_ID, CODE)
        # (token, token_type_hint) pairs revoked at /api/v1/revoke_token, in order.
        self.revoked: list[tuple[str, str]] = []
        self.refresh_token = REFRESH_TOKEN
        self._routes()

    def _routes(self) -> None:
        self.consent.install(self.server, "/api/v1/authorize")
        self.server.route("POST", "/api/v1/access_token", self._guard(self._token))
        self.server.route("POST", "/api/v1/revoke_token", self._guard(self._revoke))
        api: dict[tuple[str, str], Handler] = {
            ("GET", "/api/v1/me"): lambda request: (200, {}, load("me.json")),
            ("GET", "/message/inbox"): self._inbox,
            ("GET", "/message/mentions"): lambda request: (200, {}, self.mentions),
            ("GET", "/message/sent"): lambda request: (
                200,
                {},
                listing("t4", self.sent[::-1]),
            ),
            ("GET", f"/user/{HANDLE}/comments"): lambda request: (
                200,
                {},
                listing("t1", self.comments[::-1]),
            ),
            ("GET", "/search"): lambda request: (200, {}, self.search_results),
            ("POST", "/api/comment"): self._comment,
            ("POST", "/api/compose"): self._compose,
        }
        for (method, path), handler in api.items():
            self.server.route(method, path, self._guard(self._api(handler)))

    def fail(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer every call with `status` (and Reddit's usual headers and body)."""
        defaults: dict[int, dict[str, str]] = {
            401: {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
            429: {
                "x-ratelimit-used": "600",
                "x-ratelimit-remaining": "0.0",
                "x-ratelimit-reset": "42",
            },
        }
        messages = {
            401: "Unauthorized",
            403: "Forbidden",
            429: "Too Many Requests",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }
        self.failure = (
            status,
            headers if headers is not None else defaults.get(status, {}),
            body
            if body is not None
            else {"message": messages[status], "error": status},
        )

    def account(self, **overrides: Any) -> AccountRef:
        values: dict[str, Any] = {
            "platform": "reddit",
            "external_id": ACCOUNT_ID,
            "handle": HANDLE,
            "credentials": {
                "access_token": ACCESS_TOKEN,
                "refresh_token": REFRESH_TOKEN,
            },
            "base_url": self.server.base_url,
        }
        return AccountRef(**{**values, **overrides})

    def app(self) -> AppSecrets:
        return AppSecrets(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
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
            if request.headers.get("authorization") != f"bearer {self.access_token}":
                return 401, {}, {"message": "Unauthorized", "error": 401}
            status, headers, body = handler(request)
            return status, {**self.ratelimit, **headers}, body

        return authorized

    def _token(self, request: FakeRequest) -> Reply:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return 401, {}, {"message": "Unauthorized", "error": 401}
        form = request.form()
        grant = form.get("grant_type")
        if (
            grant == "authorization_code"
            and form.get("code") == CODE
            and form.get("redirect_uri") == (self.consent.redirect_uri or REDIRECT_URI)
        ):
            return 200, {}, self._token_body(ACCESS_TOKEN, REFRESH_TOKEN)
        if grant == "refresh_token" and form.get("refresh_token") == self.refresh_token:
            return 200, {}, self._token_body(REFRESHED_TOKEN, None)
        # Reddit answers a bad grant with 200 and an error field.
        return 200, {}, {"error": "invalid_grant"}

    def _revoke(self, request: FakeRequest) -> Reply:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return 401, {}, {"message": "Unauthorized", "error": 401}
        form = request.form()
        self.revoked.append((form.get("token", ""), form.get("token_type_hint", "")))
        if form.get("token") == self.refresh_token:
            # Revoking the refresh token ends the grant and its access tokens.
            self.refresh_token = ""
            self.access_token = ""
        return 204, {}, b""

    def _token_body(self, access: str, refresh: str | None) -> dict[str, Any]:
        self.access_token = access
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": 86400,
            "scope": SCOPE,
        }
        if refresh:
            body["refresh_token"] = refresh
        return body

    def _inbox(self, request: FakeRequest) -> Reply:
        after = request.query.get("after", [""])[0]
        if after not in self.inbox_pages:
            return 200, {}, listing("t1", [])
        return 200, {}, self.inbox_pages[after]

    def _comment(self, request: FakeRequest) -> Reply:
        form = request.form()
        if form.get("api_type") != "json":
            return 200, {}, "jQuery callback"
        if self.comment_refusal is not None:
            refusal, self.comment_refusal = self.comment_refusal, None
            return 200, {}, refusal
        thing_id = form.get("thing_id", "")
        if not form.get("text"):
            return (
                200,
                {},
                {"json": {"errors": [["NO_TEXT", "we need something here", "text"]]}},
            )
        if thing_id.startswith("t4_"):
            thing = self._message(form["text"], thing_id)
            self.sent.append(thing)
            return 200, {}, self._created("t4", thing)
        thing = copy.deepcopy(
            load("comment_created.json")["json"]["data"]["things"][0]["data"]
        )
        number = next(self._ids)
        thing.update(
            id=f"lmn{number:04d}",
            name=f"t1_lmn{number:04d}",
            body=form["text"],
            parent_id=thing_id,
            permalink=f"/r/CustomerService/comments/1hx9abc/late_parcel/lmn{number:04d}/",
            created_utc=NOW,
        )
        self.comments.append(thing)
        return 200, {}, self._created("t1", thing)

    def _compose(self, request: FakeRequest) -> Reply:
        form = request.form()
        if form.get("api_type") != "json":
            return 200, {}, "jQuery callback"
        if form.get("to") == UNKNOWN_USER:
            return 200, {}, load("compose_error.json")
        thing = self._message(form["text"], "")
        thing.update(dest=form["to"], subject=form["subject"])
        self.sent.append(thing)
        return 200, {}, {"json": {"errors": []}}

    def _message(self, text: str, parent: str) -> Thing:
        thing: Thing = copy.deepcopy(
            load("message_created.json")["json"]["data"]["things"][0]["data"]
        )
        number = next(self._ids)
        root = next(
            (
                sent.get("first_message_name") or sent["name"]
                for sent in [*self.sent, *children(self.inbox_pages[""])]
                if sent["name"] == parent
            ),
            parent or None,
        )
        thing.update(
            id=f"2r17d{number:03d}",
            name=f"t4_2r17d{number:03d}",
            body=text,
            parent_id=parent or None,
            first_message_name=root,
            created_utc=NOW,
        )
        return thing

    @staticmethod
    def _created(kind: str, thing: Thing) -> Any:
        return {
            "json": {"errors": [], "data": {"things": [{"kind": kind, "data": thing}]}}
        }
