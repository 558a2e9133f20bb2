"""A fake Graph API (v21.0) on the shared FakeServer (tests/social/fakeserver.py).

`FakeGraph(server).install()` answers what the Meta connectors call: Facebook
Login (the `dialog/oauth` consent page, tests/social/fakeserver.FakeConsent;
`oauth/access_token` for the code and the long-lived exchange, `me`,
`me/accounts`), the grant's revocation (`DELETE /{user-id}/permissions` with the
app token), comment replies (Facebook `/{comment}/comments`, Instagram
`/{comment}/replies`, both listable), Instagram mention replies and lookups, the
Send API (`/{page}/messages`) with Meta's messaging windows (24 h for RESPONSE,
7 days for the HUMAN_AGENT tag, one private reply per comment), the Conversations
API and a comment's `can_reply_privately`. Page routes check `Authorization:
Bearer`.

Switches: `fail_next(method, path, reply)` queues a reply for a route's next call;
`graph_error(...)` builds Graph's error body; `last_inbound[user]` sets when the
customer last wrote (the window the Send API enforces).
"""

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from social.connectors.base import AccountRef, AppSecrets
from tests.social.fakeserver import FakeConsent, FakeRequest, FakeServer, Reply

V = "/v21.0"
APP_ID = "meta-app-id"
APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "earshot-verify-token"
AUTH_CODE = "code-from-facebook"
SHORT_TOKEN = "user-token-short"
LONG_TOKEN = "user-token-long"
PAGE_TOKEN = "page-token-acme"
STAGING_TOKEN = "page-token-staging"
PAGE_ID = "111000111"
STAGING_PAGE_ID = "999000999"
IG_ID = "17841400000000001"
PSID = "7000000000000001"
IGSID = "6100000000000001"
USER_ID = "10160000000000001"
FB_COMMENT = "222000222_333000333"
IG_COMMENT = "18100000000000001"
WINDOW_MESSAGE = (
    "(#10) This message is sent outside of allowed window. Learn more about the new "
    "policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview"
)


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    status: int = 400,
    kind: str = "OAuthException",
    headers: dict[str, str] | None = None,
) -> Reply:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "AbCdEfGh123"
    return (status, headers or {}, {"error": error})


def token_expired() -> Reply:
    return graph_error(
        190,
        "Error validating access token: The session has been invalidated because "
        "the user changed their password.",
        subcode=460,
        status=401,
    )


def business_usage(minutes: int) -> dict[str, str]:
    usage = {
        PAGE_ID: [
            {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 30,
                "total_time": 40,
                "estimated_time_to_regain_access": minutes,
            }
        ]
    }
    return {"X-Business-Use-Case-Usage": json.dumps(usage)}


def graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class FakeGraph:
    server: FakeServer
    page_size: int = 25
    # When each customer last wrote; the Send API's windows count from here.
    last_inbound: dict[str, datetime] = field(default_factory=dict)
    # Replies under each comment and messages with each customer, newest first.
    replies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    can_reply_privately: dict[str, bool] = field(default_factory=dict)
    instagram_users: set[str] = field(default_factory=lambda: {IGSID})
    pages: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {
                "access_token": STAGING_TOKEN,
                "category": "Airline",
                "name": "Acme Air Staging",
                "id": STAGING_PAGE_ID,
                "tasks": ["ANALYZE", "ADVERTISE", "MESSAGING", "MODERATE"],
            },
            {
                "access_token": PAGE_TOKEN,
                "category": "Airline",
                "name": "Acme Air",
                "username": "acmeair",
                "id": PAGE_ID,
                "tasks": ["ANALYZE", "ADVERTISE", "MESSAGING", "MODERATE", "MANAGE"],
                "instagram_business_account": {
                    "id": IG_ID,
                    "username": "acmeair",
                    "name": "Acme Air",
                },
            },
        ]
    )
    mentioned: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Users whose grant was revoked (DELETE /{user-id}/permissions).
    revoked: list[str] = field(default_factory=list)
    consent: FakeConsent = field(default_factory=lambda: FakeConsent(APP_ID, AUTH_CODE))
    failures: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def account(self, platform: str = "facebook") -> AccountRef:
        if platform == "instagram":
            return AccountRef(
                platform="instagram",
                external_id=IG_ID,
                handle="acmeair",
                credentials={"access_token": PAGE_TOKEN, "page_id": PAGE_ID},
                base_url=self.server.base_url,
            )
        return AccountRef(
            platform="facebook",
            external_id=PAGE_ID,
            handle="acmeair",
            credentials={"access_token": PAGE_TOKEN},
            base_url=self.server.base_url,
        )

    @property
    def app(self) -> AppSecrets:
        return AppSecrets(
            client_id=APP_ID,
            client_secret=APP_SECRET,
            verify_token=VERIFY_TOKEN,
            base_url=self.server.base_url,
        )

    def install(
        self,
        fb_comments: tuple[str, ...] = (FB_COMMENT,),
        ig_comments: tuple[str, ...] = (IG_COMMENT,),
    ) -> "FakeGraph":
        self.consent.install(self.server, f"{V}/dialog/oauth")
        self._route("GET", f"{V}/oauth/access_token", self._access_token, token=None)
        self._route("GET", f"{V}/me", self._me, token=LONG_TOKEN)
        self._route("GET", f"{V}/me/accounts", self._accounts, token=LONG_TOKEN)
        self._route(
            "DELETE",
            f"{V}/{USER_ID}/permissions",
            self._revoke,
            token=f"{APP_ID}|{APP_SECRET}",
        )
        self._route("POST", f"{V}/{PAGE_ID}/messages", self._send)
        self._route("GET", f"{V}/{PAGE_ID}/conversations", self._conversations)
        self._route("GET", f"{V}/{IG_ID}", self._mentioned)
        self._route("POST", f"{V}/{IG_ID}/mentions", self._reply_to_mention)
        for comment in fb_comments:
            self._comment_routes(comment, "comments", self._fb_reply)
            self._route("GET", f"{V}/{comment}", self._comment(comment))
        for comment in ig_comments:
            self._comment_routes(comment, "replies", self._ig_reply)
        return self

    def fail_next(self, method: str, path: str, reply: Reply, times: int = 1) -> None:
        self.failures.setdefault((method, path), []).extend([reply] * times)

    def _route(
        self,
        method: str,
        path: str,
        handler: Callable[[FakeRequest], Reply],
        *,
        token: str | None = PAGE_TOKEN,
    ) -> None:
        def guarded(request: FakeRequest) -> Reply:
            queued = self.failures.get((method, path))
            if queued:
                return queued.pop(0)
            if token and request.headers.get("authorization") != f"Bearer {token}":
                return token_expired()
            return handler(request)

        self.server.route(method, path, guarded)

    def _new_id(self) -> int:
        return next(self.ids)

    # Facebook Login

    def _access_token(self, request: FakeRequest) -> Reply:
        query = {key: values[0] for key, values in request.query.items()}
        if query.get("client_id") != APP_ID or query.get("client_secret") != APP_SECRET:
            return graph_error(101, "Error validating client secret.")
        if query.get("grant_type") == "fb_exchange_token":
            if query.get("fb_exchange_token") != SHORT_TOKEN:
                return graph_error(190, "Invalid OAuth access token.")
            body = {"access_token": LONG_TOKEN, "token_type": "bearer"}
            return (200, {}, {**body, "expires_in": 5183944})
        if query.get("code") != AUTH_CODE or not query.get("redirect_uri"):
            return graph_error(100, "Invalid verification code format.")
        if self.consent.redirect_uri and (
            query["redirect_uri"] != self.consent.redirect_uri
        ):
            return graph_error(
                100,
                "Error validating verification code. Please make sure your "
                "redirect_uri is identical to the one you used in the OAuth dialog "
                "request",
            )
        body = {"access_token": SHORT_TOKEN, "token_type": "bearer"}
        return (200, {}, {**body, "expires_in": 5400})

    def _me(self, request: FakeRequest) -> Reply:
        return (200, {}, {"id": USER_ID})

    def _revoke(self, request: FakeRequest) -> Reply:
        self.revoked.append(USER_ID)
        return (200, {}, {"success": True})

    def _accounts(self, request: FakeRequest) -> Reply:
        paging = {"cursors": {"before": "QVFIUmx", "after": "QVFIUm9"}}
        return (200, {}, {"data": self.pages, "paging": paging})

    # Comments

    def _comment_routes(
        self, comment: str, edge: str, make: Callable[[str, str], dict[str, Any]]
    ) -> None:
        path = f"{V}/{comment}/{edge}"
        self.replies.setdefault(comment, [])

        def create(request: FakeRequest) -> Reply:
            reply = make(comment, request.json()["message"])
            self.replies[comment].insert(0, reply)
            return (200, {}, {"id": reply["id"]})

        def listing(request: FakeRequest) -> Reply:
            rows = self.replies[comment]
            body: dict[str, Any] = {"data": rows[: self.page_size]}
            if len(rows) > self.page_size:
                after = f"{self.server.base_url}{path}?after=QVFIUm9"
                body["paging"] = {"cursors": {"after": "QVFIUm9"}, "next": after}
            return (200, {}, body)

        self._route("POST", path, create)
        self._route("GET", path, listing)

    def _fb_reply(self, comment: str, text: str) -> dict[str, Any]:
        return {
            "id": f"{comment.split('_')[0]}_{444000000 + self._new_id()}",
            "message": text,
            "from": {"id": PAGE_ID, "name": "Acme Air"},
            "created_time": graph_time(timezone.now()),
        }

    def _ig_reply(self, comment: str, text: str) -> dict[str, Any]:
        return {
            "id": str(18200000000000000 + self._new_id()),
            "text": text,
            "from": {"id": IG_ID, "username": "acmeair"},
            "timestamp": graph_time(timezone.now()),
        }

    def _comment(self, comment: str) -> Callable[[FakeRequest], Reply]:
        def handle(request: FakeRequest) -> Reply:
            allowed = self.can_reply_privately.get(comment, True)
            return (200, {}, {"id": comment, "can_reply_privately": allowed})

        return handle

    # Instagram mentions

    def _mentioned(self, request: FakeRequest) -> Reply:
        fields = request.query.get("fields", [""])[0]
        key = fields.split(".")[0]
        return (200, {}, {key: self.mentioned.get(key, {}), "id": IG_ID})

    def _reply_to_mention(self, request: FakeRequest) -> Reply:
        return (200, {}, {"id": str(17900000000000000 + self._new_id())})

    # Send API and conversations

    def _send(self, request: FakeRequest) -> Reply:
        body = request.json()
        recipient = body["recipient"]
        message_id = f"m_sent{self._new_id()}"
        if "comment_id" in recipient:
            comment = recipient["comment_id"]
            if not self.can_reply_privately.get(comment, True):
                return graph_error(
                    10, "(#10) This comment has already been replied to privately."
                )
            self.can_reply_privately[comment] = False
            return (
                200,
                {},
                {"recipient_id": f"psid-{comment}", "message_id": message_id},
            )
        user = recipient["id"]
        age = timezone.now() - self.last_inbound.get(user, timezone.now())
        tagged = body.get("messaging_type") == "MESSAGE_TAG"
        if tagged and body.get("tag") != "HUMAN_AGENT":
            return graph_error(100, "(#100) Param tag must be one of {HUMAN_AGENT}")
        window = timedelta(days=7) if tagged else timedelta(hours=24)
        if age > window:
            return graph_error(10, WINDOW_MESSAGE, subcode=2018278)
        sender = IG_ID if user in self.instagram_users else PAGE_ID
        self.conversations.setdefault(user, []).insert(
            0,
            {
                "id": message_id,
                "message": body["message"]["text"],
                "from": {"id": sender},
                "created_time": graph_time(timezone.now()),
            },
        )
        return (200, {}, {"recipient_id": user, "message_id": message_id})

    def _conversations(self, request: FakeRequest) -> Reply:
        user = request.query["user_id"][0]
        if user not in self.conversations:
            return (200, {}, {"data": []})
        rows = self.conversations[user]
        messages: dict[str, Any] = {"data": rows[: self.page_size]}
        if len(rows) > self.page_size:
            messages["paging"] = {"next": f"{self.server.base_url}/next"}
        return (200, {}, {"data": [{"id": "t_10000000001", "messages": messages}]})
