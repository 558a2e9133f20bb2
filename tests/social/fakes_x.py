"""A fake X API v2 on the shared FakeServer (tests/social/fakeserver.py).

`FakeX(server).install()` answers what XConnector calls: the consent page
(`/i/oauth2/authorize`, tests/social/fakeserver.FakeConsent), the OAuth 2.0 token
endpoint (code grant checked against the consent's PKCE challenge, refresh grant,
Basic auth), token revocation, `users/me`, the mentions timeline
and recent search (with `since_id` and page tokens), post creation (refusing
duplicate text the way X does), DM creation, and the lookups find_delivery uses (the
account's own posts, a DM thread's events). Every route checks the bearer token.

Switches: `fail_next(method, path, reply)` queues a reply for a route's next call;
`unauthorized()`, `rate_limited()`, `server_error()` and `duplicate_content()` build
the replies X sends (problem+json, Retry-After or x-rate-limit-reset).
"""

import base64
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.utils import timezone

from social.connectors.base import AccountRef, AppSecrets
from tests.social.fakeserver import FakeConsent, FakeRequest, FakeServer, Reply

ACCOUNT_ID = "1000"
HANDLE = "acmeair"
CUSTOMER_ID = "2000"
CLIENT_ID = "x-client-id"
CLIENT_SECRET = "x-consumer-secret"
AUTH_CODE = "code-from-x"
SCOPE = "tweet.read tweet.write users.read dm.read dm.write offline.access"


SNOWFLAKE_EPOCH_MS = 1288834974657


def snowflake(moment: datetime, sequence: int = 0) -> str:
    """A post id as X makes them: milliseconds since X's epoch above 22 low bits."""
    millis = int(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS
    return str((millis << 22) + sequence)


def problem(status: int, title: str, detail: str, **headers: str) -> Reply:
    body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
    return (status, {"Content-Type": "application/problem+json", **headers}, body)


def unauthorized() -> Reply:
    return problem(401, "Unauthorized", "Unauthorized")


def rate_limited(*, retry_after: int | None = None, reset: int | None = None) -> Reply:
    headers = {"x-rate-limit-limit": "300", "x-rate-limit-remaining": "0"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if reset is not None:
        headers["x-rate-limit-reset"] = str(reset)
    return problem(429, "Too Many Requests", "Too Many Requests", **headers)


def server_error() -> Reply:
    return problem(503, "Service Unavailable", "Service Unavailable")


def duplicate_content() -> Reply:
    return problem(
        403,
        "Forbidden",
        "You are not allowed to create a Tweet with duplicate content.",
    )


def v2_post(
    post_id: str,
    text: str,
    *,
    author_id: str = CUSTOMER_ID,
    created_at: str = "2026-08-12T18:00:00.000Z",
    reply_to: str = "",
    mentions: tuple[tuple[str, str], ...] = ((ACCOUNT_ID, HANDLE),),
) -> dict[str, Any]:
    """A v2 post as the API returns it with the connector's tweet.fields."""
    post: dict[str, Any] = {
        "id": post_id,
        "text": text,
        "author_id": author_id,
        "created_at": created_at,
        "conversation_id": reply_to or post_id,
        "lang": "en",
        "edit_history_tweet_ids": [post_id],
    }
    if mentions:
        post["entities"] = {
            "mentions": [
                {"start": 0, "end": len(name) + 1, "username": name, "id": user_id}
                for user_id, name in mentions
            ]
        }
    if reply_to:
        post["referenced_tweets"] = [{"type": "replied_to", "id": reply_to}]
    return post


def _now_iso() -> str:
    return timezone.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class FakeX:
    server: FakeServer
    account_id: str = ACCOUNT_ID
    handle: str = HANDLE
    page_size: int = 2
    access_token: str = "x-access-1"
    refresh_token: str = "x-refresh-1"
    # Newest first, as X lists them.
    mentions: list[dict[str, Any]] = field(default_factory=list)
    search_results: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    dm_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            ACCOUNT_ID: {
                "id": ACCOUNT_ID,
                "username": HANDLE,
                "name": "Acme Air",
                "public_metrics": {"followers_count": 250000},
            },
            CUSTOMER_ID: {
                "id": CUSTOMER_ID,
                "username": "pat_flyer",
                "name": "Pat Flyer",
                "public_metrics": {"followers_count": 4210},
            },
        }
    )
    failures: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    ids: Iterator[int] = field(
        default_factory=lambda: itertools.count(1795000000000000001)
    )
    consent: FakeConsent = field(
        default_factory=lambda: FakeConsent(CLIENT_ID, AUTH_CODE)
    )
    # (token, token_type_hint) pairs revoked at /2/oauth2/revoke, in order.
    revoked: list[tuple[str, str]] = field(default_factory=list)

    @property
    def account(self) -> AccountRef:
        return AccountRef(
            platform="x",
            external_id=self.account_id,
            handle=self.handle,
            credentials={
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
            },
            base_url=self.server.base_url,
        )

    @property
    def app(self) -> AppSecrets:
        return AppSecrets(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            base_url=self.server.base_url,
        )

    def install(self, participants: tuple[str, ...] = (CUSTOMER_ID,)) -> "FakeX":
        me = self.account_id
        self.consent.install(self.server, "/i/oauth2/authorize")
        self._route("POST", "/2/oauth2/token", self._token, bearer=False)
        self._route("POST", "/2/oauth2/revoke", self._revoke, bearer=False)
        self._route("GET", "/2/users/me", self._me)
        self._route(
            "GET", f"/2/users/{me}/mentions", self._listing(lambda: self.mentions)
        )
        self._route(
            "GET", "/2/tweets/search/recent", self._listing(lambda: self.search_results)
        )
        self._route(
            "GET", f"/2/users/{me}/tweets", self._listing(lambda: self.timeline)
        )
        self._route("POST", "/2/tweets", self._create_post)
        for participant in participants:
            base = f"/2/dm_conversations/with/{participant}"
            self._route("POST", f"{base}/messages", self._dm_creator(participant))
            self.dm_events.setdefault(participant, [])
            self._route(
                "GET",
                f"{base}/dm_events",
                self._listing(partial(self.dm_events.__getitem__, participant)),
            )
        return self

    def fail_next(self, method: str, path: str, reply: Reply, times: int = 1) -> None:
        self.failures.setdefault((method, path), []).extend([reply] * times)

    def calls(self, method: str, path: str) -> list[FakeRequest]:
        return [
            r for r in self.server.requests if r.method == method and r.path == path
        ]

    def _route(
        self,
        method: str,
        path: str,
        handler: Callable[[FakeRequest], Reply],
        *,
        bearer: bool = True,
    ) -> None:
        def guarded(request: FakeRequest) -> Reply:
            queued = self.failures.get((method, path))
            if queued:
                return queued.pop(0)
            expected = f"Bearer {self.access_token}"
            if bearer and request.headers.get("authorization") != expected:
                return unauthorized()
            return handler(request)

        self.server.route(method, path, guarded)

    def _token(self, request: FakeRequest) -> Reply:
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return (401, {}, {"error": "unauthorized_client"})
        form = request.form()
        grant = form.get("grant_type")
        if grant == "authorization_code" and form.get("code") == AUTH_CODE:
            if not form.get("code_verifier"):
                return (400, {}, {"error": "invalid_request"})
            if not self._pkce_matches(form):
                description = "Value passed for the authorization code was invalid."
                return (
                    400,
                    {},
                    {"error": "invalid_request", "error_description": description},
                )
        elif (
            grant == "refresh_token" and form.get("refresh_token") == self.refresh_token
        ):
            self.access_token, self.refresh_token = "x-access-2", "x-refresh-2"
        else:
            description = "Value passed for the token was invalid."
            return (
                400,
                {},
                {"error": "invalid_request", "error_description": description},
            )
        body = {
            "token_type": "bearer",
            "expires_in": 7200,
            "access_token": self.access_token,
            "scope": SCOPE,
            "refresh_token": self.refresh_token,
        }
        return (200, {}, body)

    def _pkce_matches(self, form: dict[str, str]) -> bool:
        """After a consent (the authorize page was visited), the exchange must carry
        its redirect_uri and the verifier of its S256 challenge."""
        if not self.consent.code_challenge:
            return True
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return (
            challenge == self.consent.code_challenge
            and form.get("redirect_uri") == self.consent.redirect_uri
        )

    def _revoke(self, request: FakeRequest) -> Reply:
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return (401, {}, {"error": "unauthorized_client"})
        form = request.form()
        if form.get("client_id") != CLIENT_ID or not form.get("token"):
            return (400, {}, {"error": "invalid_request"})
        self.revoked.append((form["token"], form.get("token_type_hint", "")))
        return (200, {}, {"revoked": True})

    def _me(self, request: FakeRequest) -> Reply:
        user = self.users[self.account_id]
        return (200, {}, {"data": {k: user[k] for k in ("id", "name", "username")}})

    def _listing(
        self, source: Callable[[], list[dict[str, Any]]]
    ) -> Callable[[FakeRequest], Reply]:
        """Newest-first pages of `source()` after since_id / from start_time."""

        def handle(request: FakeRequest) -> Reply:
            posts = source()
            query = {key: values[0] for key, values in request.query.items()}
            since = query.get("since_id", "")
            start = query.get("start_time", "")
            selected = [
                p
                for p in posts
                if (not since or (len(p["id"]), p["id"]) > (len(since), since))
                and (not start or p["created_at"] >= start)
            ]
            token = query.get("pagination_token") or query.get("next_token") or ""
            offset = int(token.removeprefix("page-") or 0)
            page = selected[offset : offset + self.page_size]
            meta: dict[str, Any] = {"result_count": len(page)}
            body: dict[str, Any] = {"meta": meta}
            if page:
                body["data"] = page
                authors = {str(p.get("author_id") or p.get("sender_id")) for p in page}
                body["includes"] = {
                    "users": [self.users[a] for a in sorted(authors) if a in self.users]
                }
                meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
            if offset + self.page_size < len(selected):
                meta["next_token"] = f"page-{offset + self.page_size}"
            return (200, {}, body)

        return handle

    def _create_post(self, request: FakeRequest) -> Reply:
        body = request.json()
        if any(p["text"] == body["text"] for p in self.timeline):
            return duplicate_content()
        post_id = str(next(self.ids))
        reply_to = body.get("reply", {}).get("in_reply_to_tweet_id", "")
        post = v2_post(
            post_id,
            body["text"],
            author_id=self.account_id,
            created_at=_now_iso(),
            reply_to=reply_to,
            mentions=(),
        )
        self.timeline.insert(0, post)
        data = {
            "id": post_id,
            "text": body["text"],
            "edit_history_tweet_ids": [post_id],
        }
        return (201, {}, {"data": data})

    def _dm_creator(self, participant: str) -> Callable[[FakeRequest], Reply]:
        def handle(request: FakeRequest) -> Reply:
            event_id = str(next(self.ids))
            ids = sorted((self.account_id, participant), key=lambda i: (len(i), i))
            conversation = "-".join(ids)
            self.dm_events[participant].insert(
                0,
                {
                    "id": event_id,
                    "event_type": "MessageCreate",
                    "text": request.json()["text"],
                    "sender_id": self.account_id,
                    "dm_conversation_id": conversation,
                    "created_at": _now_iso(),
                },
            )
            data = {"dm_conversation_id": conversation, "dm_event_id": event_id}
            return (201, {}, {"data": data})

        return handle
