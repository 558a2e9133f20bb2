"""A fake Bluesky PDS (with the chat service behind it) on the loopback fake server.

It runs app-password sessions (createSession, refreshSession and deleteSession
with the refresh JWT as bearer, ExpiredToken answers), serves the captured
listNotifications pages from tests/social/fixtures/bluesky/ by `cursor` (as-is:
it ignores `reasons`, like an older AppView), the chat log after a `cursor`,
posts, profiles, author feeds and conversations. It REQUIRES the `atproto-proxy`
header on chat routes (400 without it) and validates reply records: parent and
root must be existing posts with the right cids, and root must be the parent's
thread root. `fail(status)` makes every call answer 401, 429 (with Bluesky's
`ratelimit-*` headers), 5xx or another error.
"""

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from social.connectors.base import AccountRef
from tests.social.fakeserver import FakeRequest, FakeServer, Handler, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "bluesky"
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
HANDLE = "earshot.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
BRAND_DID = "did:plc:earshotbrandqk5wmjv3atyz"
ALICE_DID = "did:plc:alicecustomerz7q2k4m5n6o"
BOB_DID = "did:plc:bobcustomer2345abcdefghi"
CAROL_DID = "did:plc:carolcustomerxyz234567ab"
DAN_DID = "did:plc:danposterabcdefghijk2345"
BOB_CONVO = "3lconvobob222"
NOW = "2026-01-02T03:05:00.000Z"
RATE_LIMIT_RESET = "1767323190"  # 03:06:30, 90 s after NOW
MAX_GRAPHEMES = 300

Json = dict[str, Any]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


SESSION: Json = load("create_session.json")
REFRESHED: Json = load("refresh_session.json")
ACCESS_JWT: str = SESSION["accessJwt"]
REFRESH_JWT: str = SESSION["refreshJwt"]


def xrpc_error(status: int, error: str, message: str) -> Reply:
    return status, {}, {"error": error, "message": message}


class FakeBluesky:
    """One PDS account and its chat; tests read `server.requests` and `created`."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.failure: Reply | None = None
        self.access_jwt = ACCESS_JWT
        self.refresh_jwt = REFRESH_JWT
        self.notification_pages: dict[str, Json] = {
            "": load("list_notifications_page1.json"),
            "2026-01-02T02:55:00.000Z": load("list_notifications_page2.json"),
        }
        self.chat_logs: list[Json] = load("chat_get_log.json")["logs"]
        self.posts: dict[str, Json] = {
            post["uri"]: post for post in load("get_posts.json")["posts"]
        }
        self.profiles: dict[str, Json] = {
            p["did"]: p for p in load("get_profiles.json")["profiles"]
        }
        self.messages: dict[str, list[Json]] = {
            BOB_CONVO: load("get_messages.json")["messages"]
        }
        self.chat_disabled = {CAROL_DID}
        self.created: list[Json] = []
        self.deleted_sessions: list[str] = []
        self._ids = itertools.count(1)
        self._routes()

    def _routes(self) -> None:
        session: dict[str, Handler] = {
            "com.atproto.server.createSession": self._create_session,
            "com.atproto.server.refreshSession": self._refresh_session,
            "com.atproto.server.deleteSession": self._delete_session,
        }
        for nsid, handler in session.items():
            self.server.route("POST", f"/xrpc/{nsid}", self._guard(handler))
        api: dict[tuple[str, str], Handler] = {
            ("GET", "app.bsky.notification.listNotifications"): self._notifications,
            ("GET", "app.bsky.actor.getProfiles"): self._get_profiles,
            ("GET", "app.bsky.feed.getPosts"): self._get_posts,
            ("GET", "app.bsky.feed.getAuthorFeed"): self._author_feed,
            ("POST", "com.atproto.repo.createRecord"): self._create_record,
        }
        chat: dict[tuple[str, str], Handler] = {
            ("GET", "chat.bsky.convo.getLog"): self._get_log,
            ("GET", "chat.bsky.convo.getConvoForMembers"): self._convo_for_members,
            ("GET", "chat.bsky.convo.getMessages"): self._get_messages,
            ("POST", "chat.bsky.convo.sendMessage"): self._send_message,
        }
        for (method, nsid), handler in api.items():
            self.server.route(method, f"/xrpc/{nsid}", self._guard(self._api(handler)))
        for (method, nsid), handler in chat.items():
            self.server.route(
                method, f"/xrpc/{nsid}", self._guard(self._api(self._chat(handler)))
            )

    def fail(
        self, status: int, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        """Answer every call with `status`, Bluesky's headers and XRPC error body."""
        defaults = {
            429: {
                "ratelimit-limit": "3000",
                "ratelimit-remaining": "0",
                "ratelimit-reset": RATE_LIMIT_RESET,
                "ratelimit-policy": "3000;w=300",
            }
        }
        errors = {
            401: ("AuthenticationRequired", "Authentication Required"),
            400: ("InvalidRequest", "Input/uris must be a valid at-uri"),
            429: ("RateLimitExceeded", "Rate Limit Exceeded"),
            500: ("InternalServerError", "Internal Server Error"),
            502: ("UpstreamFailure", "Upstream Failure"),
        }
        error, message = errors[status]
        self.failure = (
            status,
            headers if headers is not None else defaults.get(status, {}),
            body if body is not None else {"error": error, "message": message},
        )

    def expire_access(self) -> None:
        """The access JWT expires (Bluesky answers 400 ExpiredToken)."""
        self.access_jwt = "expired"

    def expire_refresh(self) -> None:
        self.refresh_jwt = "expired"

    def account(self, **overrides: Any) -> AccountRef:
        values: dict[str, Any] = {
            "platform": "bluesky",
            "external_id": BRAND_DID,
            "handle": HANDLE,
            "credentials": {"access_token": ACCESS_JWT, "refresh_token": REFRESH_JWT},
            "base_url": self.server.base_url,
        }
        return AccountRef(**{**values, **overrides})

    def _guard(self, handler: Handler) -> Handler:
        def guarded(request: FakeRequest) -> Reply:
            if self.failure is not None:
                return self.failure
            return handler(request)

        return guarded

    def _api(self, handler: Handler) -> Handler:
        def authorized(request: FakeRequest) -> Reply:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token == self.access_jwt:
                return handler(request)
            if token in (ACCESS_JWT, REFRESHED["accessJwt"]):
                return xrpc_error(400, "ExpiredToken", "Token has expired")
            return xrpc_error(401, "AuthenticationRequired", "Invalid token")

        return authorized

    def _chat(self, handler: Handler) -> Handler:
        def proxied(request: FakeRequest) -> Reply:
            if request.headers.get("atproto-proxy") != CHAT_PROXY:
                return xrpc_error(
                    400,
                    "InvalidRequest",
                    f"chat.bsky methods need atproto-proxy: {CHAT_PROXY}",
                )
            return handler(request)

        return proxied

    def _create_session(self, request: FakeRequest) -> Reply:
        body = request.json()
        if body.get("identifier") not in (HANDLE, BRAND_DID) or (
            body.get("password") != APP_PASSWORD
        ):
            return xrpc_error(
                401, "AuthenticationRequired", "Invalid identifier or password"
            )
        return 200, {}, SESSION

    def _refresh_session(self, request: FakeRequest) -> Reply:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token != self.refresh_jwt:
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        self.access_jwt = REFRESHED["accessJwt"]
        self.refresh_jwt = REFRESHED["refreshJwt"]
        return 200, {}, REFRESHED

    def _delete_session(self, request: FakeRequest) -> Reply:
        """Ends the session of the refresh JWT presented (its JWTs stop working)."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token != self.refresh_jwt:
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        self.deleted_sessions.append(token)
        self.access_jwt = self.refresh_jwt = "deleted"
        return 200, {}, b""

    def _notifications(self, request: FakeRequest) -> Reply:
        cursor = request.query.get("cursor", [""])[0]
        page = self.notification_pages.get(cursor)
        if page is None:
            return 200, {}, {"notifications": []}
        return 200, {}, page

    def _get_profiles(self, request: FakeRequest) -> Reply:
        actors = request.query.get("actors", [])
        found = [self.profiles[did] for did in actors if did in self.profiles]
        return 200, {}, {"profiles": found}

    def _get_posts(self, request: FakeRequest) -> Reply:
        uris = request.query.get("uris", [])
        return 200, {}, {"posts": [self.posts[u] for u in uris if u in self.posts]}

    def _author_feed(self, request: FakeRequest) -> Reply:
        actor = request.query.get("actor", [""])[0]
        mine = [p for p in self.posts.values() if p["author"]["did"] == actor]
        mine.sort(key=lambda post: post["indexedAt"], reverse=True)
        return 200, {}, {"feed": [{"post": post} for post in mine]}

    def _create_record(self, request: FakeRequest) -> Reply:
        body = request.json()
        record = body.get("record") or {}
        if body.get("repo") != BRAND_DID:
            return xrpc_error(400, "InvalidRequest", "Input/repo is not the session's")
        if body.get("collection") != "app.bsky.feed.post" or (
            record.get("$type") != "app.bsky.feed.post" or "createdAt" not in record
        ):
            return xrpc_error(
                400, "InvalidRequest", "Invalid app.bsky.feed.post record"
            )
        if len(record.get("text", "")) > MAX_GRAPHEMES:
            return xrpc_error(
                400,
                "InvalidRequest",
                "Invalid app.bsky.feed.post record: Record/text must not be longer "
                "than 300 graphemes",
            )
        problem = self._reply_problem(record.get("reply"))
        if problem:
            return xrpc_error(400, "InvalidRequest", problem)
        number = next(self._ids)
        uri = f"at://{BRAND_DID}/app.bsky.feed.post/3lnewpost{number:04d}"
        cid = f"bafyreinewpost{number:04d}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        self.posts[uri] = {
            "uri": uri,
            "cid": cid,
            "author": {
                "did": BRAND_DID,
                "handle": HANDLE,
                "displayName": "Earshot Air",
            },
            "record": record,
            "indexedAt": NOW,
            "labels": [],
        }
        self.created.append(self.posts[uri])
        return (
            200,
            {},
            {
                "uri": uri,
                "cid": cid,
                "commit": {"cid": f"bafyreicommit{number:04d}", "rev": "3lnewrev"},
                "validationStatus": "valid",
            },
        )

    def _reply_problem(self, reply: Json | None) -> str:
        """Why a reply's root/parent refs are wrong ("" when they are right)."""
        if reply is None:
            return ""
        parent, root = reply.get("parent") or {}, reply.get("root") or {}
        post = self.posts.get(parent.get("uri", ""))
        if post is None or post["cid"] != parent.get("cid"):
            return "Invalid reply: parent is not an existing post with that cid"
        thread = (post["record"].get("reply") or {}).get("root") or {
            "uri": post["uri"],
            "cid": post["cid"],
        }
        if (root.get("uri"), root.get("cid")) != (thread["uri"], thread["cid"]):
            return "Invalid reply: root is not the parent's thread root"
        return ""

    def _get_log(self, request: FakeRequest) -> Reply:
        cursor = request.query.get("cursor", [""])[0]
        logs = [log for log in self.chat_logs if log["rev"] > cursor]
        if not logs:
            return 200, {}, {"logs": []}
        return 200, {}, {"logs": logs, "cursor": logs[-1]["rev"]}

    def _convo_for_members(self, request: FakeRequest) -> Reply:
        members = request.query.get("members", [])
        if any(did in self.chat_disabled for did in members):
            return 400, {}, load("chat_disabled_error.json")
        convo = copy.deepcopy(load("get_convo_for_members.json"))
        if members != [BOB_DID]:
            convo["convo"]["id"] = f"3lconvonew{len(self.messages):03d}"
            convo["convo"]["members"] = [
                {"did": BRAND_DID},
                *({"did": m} for m in members),
            ]
        self.messages.setdefault(convo["convo"]["id"], [])
        return 200, {}, convo

    def _get_messages(self, request: FakeRequest) -> Reply:
        convo = request.query.get("convoId", [""])[0]
        if convo not in self.messages:
            return xrpc_error(400, "InvalidRequest", "Convo not found")
        return 200, {}, {"messages": self.messages[convo]}

    def _send_message(self, request: FakeRequest) -> Reply:
        body = request.json()
        convo = body.get("convoId", "")
        if convo not in self.messages:
            return xrpc_error(400, "InvalidRequest", "Convo not found")
        number = next(self._ids)
        message = {
            "$type": "chat.bsky.convo.defs#messageView",
            "id": f"3lmsgnew{number:05d}",
            "rev": f"33333333333{number:02d}",
            "text": body["message"]["text"],
            "facets": [],
            "sender": {"did": BRAND_DID},
            "sentAt": NOW,
        }
        self.messages[convo].insert(0, message)
        self.created.append(message)
        return 200, {}, message
