"""Bluesky (AT Protocol): app-password sessions, notifications and chat, replies.

Connecting: the connect form asks for the handle and an app password (created with
direct-message access, or chat calls fail) and calls `create_session`; there is no
OAuth redirect in this flow. Sessions are refreshed with `refreshSession`.

Inbound is polled: `app.bsky.notification.listNotifications` (mentions, replies and
quotes of the account; cursor pages go back in time) and `chat.bsky.convo.getLog`
(direct messages; its cursor goes forward). Chat calls carry the
`atproto-proxy: did:web:api.bsky.chat#bsky_chat` header so the PDS forwards them.

Public replies are `app.bsky.feed.post` records with `reply.root` and `reply.parent`
strong refs (uri + cid), read from the answered post (`getPosts`). Posts are limited
to 300 graphemes; the connector's max_length counts code points, which matches for
text without combining sequences or emoji modifiers and otherwise errs towards
refusing early.

Base URL: `AccountRef.base_url`, or https://bsky.social (the entryway, which
forwards to the account's PDS). Rate limits (5,000 write points an hour per account,
3,000 requests per 5 minutes per IP) come as `ratelimit-reset` (epoch seconds),
which this module turns into `retry_after`.
"""

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

import httpx
from django.utils import timezone

from social import http
from social.connectors import register_connector
from social.connectors.base import (
    AccountRef,
    AppSecrets,
    Author,
    Capabilities,
    Connector,
    ConnectorError,
    DeliveryResult,
    Engagement,
    FetchResult,
    InboundItem,
    OutboundReply,
    SendLimit,
    TokenSet,
    engagement_from,
)
from social.connectors.text import malformed_as_value_error, parsed_each

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://bsky.social"
WEB = "https://bsky.app"
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
POST_TYPE = "app.bsky.feed.post"
CREATE_MESSAGE_LOG = "chat.bsky.convo.defs#logCreateMessage"
MESSAGE_VIEW = "chat.bsky.convo.defs#messageView"
KINDS = {"mention": "mention", "reply": "comment", "quote": "post"}
PAGE_SIZE = 50
# Pages per source and poll; a backlog beyond this is picked up by later polls.
MAX_PAGES = 5
LOOKUP_SIZE = 30
PROFILE_BATCH = 25
# XRPC errors that mean the session token is dead (Bluesky answers them with 400).
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
NO_OAUTH = (
    "Bluesky accounts connect with the handle and an app password "
    "(BlueskyConnector.create_session); there is no OAuth redirect."
)

Json = dict[str, Any]


class _Api:
    """XRPC calls with one token against one PDS."""

    def __init__(self, base_url: str, token: str) -> None:
        if not token:
            raise ConnectorError(
                "The Bluesky account has no session.", permanent=True, auth=True
            )
        self.base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.token = token

    @classmethod
    def for_account(cls, account: AccountRef) -> "_Api":
        return cls(account.base_url, str(account.credentials.get("access_token") or ""))

    def call(
        self, method: str, nsid: str, *, chat: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """Call `nsid`; `chat` adds the chat proxy header. Raises ConnectorError:
        expired or invalid tokens are auth errors, 429s carry retry_after."""
        headers = {**kwargs.get("headers", {}), "Authorization": f"Bearer {self.token}"}
        if chat:
            headers["atproto-proxy"] = CHAT_PROXY
        kwargs["headers"] = headers
        try:
            return http.request(method, f"{self.base}/xrpc/{nsid}", **kwargs)
        except ConnectorError as error:
            mapped = self._mapped(error)
            if mapped is error:
                raise
            raise mapped from error

    def _mapped(self, error: ConnectorError) -> ConnectorError:
        if error.status is None:
            return error
        if error.status == 429 and error.retry_after is None:
            error.retry_after = _seconds_until_epoch(
                error.headers.get("ratelimit-reset", "")
            )
        if error.status == 400 and _error_code(error) in TOKEN_ERRORS:
            return ConnectorError(
                error.message, permanent=True, auth=True, status=error.status
            )
        return error


@dataclass(frozen=True)
class PollCursor:
    """Where polling stopped: the newest notification's `indexedAt`, short hashes of
    the notifications returned at that instant, and the chat log cursor.

    Serialised as compact JSON (it fits the account's 255-character cursor field).
    """

    newest: str = ""
    seen: frozenset[str] = frozenset()
    chat: str = ""

    @classmethod
    def parse(cls, raw: str) -> "PollCursor":
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(data.get("n", ""), frozenset(data.get("s", [])), data.get("c", ""))

    def __str__(self) -> str:
        data = {"n": self.newest, "s": sorted(self.seen), "c": self.chat}
        return json.dumps(data, separators=(",", ":"))

    def is_new(self, notification: Json) -> bool:
        if not self.newest:
            return True
        indexed, newest = _time(notification["indexedAt"]), _time(self.newest)
        if indexed == newest:
            return _short(notification["uri"]) not in self.seen
        return indexed > newest

    def advanced(self, notifications: list[Json], chat: str) -> "PollCursor":
        """The cursor after returning `notifications` (all new) and reading chat."""
        if not notifications:
            return replace(self, chat=chat)
        latest = max(notifications, key=lambda n: _time(n["indexedAt"]))
        at = _time(latest["indexedAt"])
        seen = {_short(n["uri"]) for n in notifications if _time(n["indexedAt"]) == at}
        if self.newest and _time(self.newest) == at:
            seen |= self.seen
        return PollCursor(latest["indexedAt"], frozenset(seen), chat)


@register_connector
class BlueskyConnector(Connector):
    """Mentions, replies, quotes and chat of one Bluesky account."""

    platform: ClassVar[str] = "bluesky"
    # Replies to any post; chat with anyone whose settings allow it (start_private),
    # never linked to a post. 300 graphemes per post (counted as code points).
    capabilities: ClassVar[Capabilities] = Capabilities(
        public_reply=True,
        private_message=True,
        start_private=True,
        max_length=300,
        polling=True,
    )

    def create_session(
        self, identifier: str, app_password: str, base_url: str = ""
    ) -> TokenSet:
        """Log in with a handle (or DID/email) and an app password.

        Returns the access and refresh JWTs, the account's DID as its external id
        and its handle. Raises ConnectorError (auth) for a wrong password.
        """
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        session = http.request(
            "POST",
            f"{base}/xrpc/com.atproto.server.createSession",
            json={"identifier": identifier, "password": app_password},
        ).json()
        return _token_set(session)

    def authorize_url(
        self, app: AppSecrets, *, redirect_uri: str, state: str, code_challenge: str
    ) -> str:
        """Not used: the connect form asks for the handle and an app password."""
        raise NotImplementedError(NO_OAUTH)

    def exchange_code(
        self, app: AppSecrets, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        """Not used: see create_session."""
        raise NotImplementedError(NO_OAUTH)

    def refresh(self, app: AppSecrets, account: AccountRef) -> TokenSet:
        """A new session from the refresh JWT (`refreshSession`, refresh JWT as bearer).

        Raises ConnectorError (auth) when the refresh token expired or was revoked:
        the admin then enters an app password again.
        """
        api = _Api(
            account.base_url, str(account.credentials.get("refresh_token") or "")
        )
        return _token_set(api.call("POST", "com.atproto.server.refreshSession").json())

    def revoke(self, app: AppSecrets, account: AccountRef) -> None:
        """End the session (`com.atproto.server.deleteSession`, refresh JWT as
        bearer); its access and refresh JWTs stop working. The app password itself
        stays valid: only the person can delete it in Bluesky's settings. Raises
        ConnectorError when Bluesky refuses or cannot be reached."""
        api = _Api(
            account.base_url, str(account.credentials.get("refresh_token") or "")
        )
        api.call("POST", "com.atproto.server.deleteSession")

    def fetch_since(self, account: AccountRef, cursor: str) -> FetchResult:
        """Mentions, replies, quotes and direct messages since `cursor`, oldest first.

        Notifications are read newest first, following `cursor` pages back until the
        stored position; the first poll reads one page. Chat is read forward from the
        stored log cursor. The account's own posts and messages are skipped; authors
        get handles and follower counts from `getProfiles` when it answers. Raises
        ConnectorError; the cursor is then not advanced.
        """
        since = PollCursor.parse(cursor)
        api = _Api.for_account(account)
        notifications = _new_notifications(api, since)
        logs, chat_cursor = _new_chat_logs(api, since.chat)
        items = parsed_each(
            "bluesky notification",
            partial(_other_notification, own_did=account.external_id),
            notifications,
        )
        items += _chat_items(logs, account.external_id)
        items = _with_profiles(api, items)
        items.sort(key=lambda item: (item.created_at, item.external_id))
        return FetchResult(
            items=items, cursor=str(since.advanced(notifications, chat_cursor))
        )

    engagement_batch: ClassVar[int] = 25
    # Reads count against 3,000 requests per 5 minutes per IP (platforms.md
    # section 10), which all the accounts of a deployment share: a tenth each.
    engagement_limit: ClassVar[SendLimit | None] = SendLimit(300, 300, "engagement")

    def read_engagement(
        self, account: AccountRef, post_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """`app.bsky.feed.getPosts?uris=..` (up to 25 at-uris): each PostView's
        repostCount, likeCount, replyCount and quoteCount. Deleted posts are
        not in `posts`. Raises ConnectorError (a 429 waits until ratelimit-reset).
        """
        answer = (
            _Api.for_account(account)
            .call(
                "GET",
                "app.bsky.feed.getPosts",
                params=[("uris", uri) for uri in post_ids],
            )
            .json()
        )
        posts = answer.get("posts") if isinstance(answer, dict) else None
        found: dict[str, Engagement] = {}
        for post in posts if isinstance(posts, list) else []:
            try:
                found[str(post["uri"])] = engagement_from(
                    post,
                    reposts="repostCount",
                    likes="likeCount",
                    replies="replyCount",
                    quotes="quoteCount",
                )
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning("Bluesky getPosts: malformed post left out: %r", exc)
        return found

    def send_limit(self, account: AccountRef, reply: OutboundReply) -> SendLimit:
        """5,000 write points an hour per account, 3 per created record."""
        return SendLimit(5000 // 3, 3600, "writes")

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        """Post a reply in the thread, or send a direct message.

        Public: read the answered post (`getPosts`) for its cid and its thread root,
        then `createRecord` a post with `reply.root`/`reply.parent`. Private: the
        conversation (`in_reply_to` when it is one, else `getConvoForMembers` with
        the recipient), then `sendMessage`. Raises ConnectorError (permanent when the
        post is gone or the recipient does not accept messages).
        """
        api = _Api.for_account(account)
        if reply.visibility == "private":
            message = api.call(
                "POST",
                "chat.bsky.convo.sendMessage",
                chat=True,
                json={
                    "convoId": _convo_id(api, reply),
                    "message": {"text": reply.text},
                },
            ).json()
            return DeliveryResult(
                external_id=message["id"], sent_at=_time(message["sentAt"])
            )
        root, parent = _reply_refs(api, reply.in_reply_to)
        now = timezone.now()
        record = {
            "$type": POST_TYPE,
            "text": reply.text,
            "createdAt": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "reply": {"root": root, "parent": parent},
        }
        created = api.call(
            "POST",
            "com.atproto.repo.createRecord",
            json={
                "repo": account.external_id,
                "collection": POST_TYPE,
                "record": record,
            },
        ).json()
        return DeliveryResult(
            external_id=created["uri"],
            url=post_url(created["uri"], account.handle),
            sent_at=now,
        )

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        """The reply when Bluesky has it; None when it never arrived.

        Public: the account's recent posts (`getAuthorFeed`, replies included) with
        the same reply parent and text. Private: the conversation's recent messages
        (`getMessages`) sent by the account with the same text; a first message's
        conversation comes from `getConvoForMembers`, which creates an empty one
        when none exists (harmless). Raises ConnectorError when Bluesky cannot be
        asked.
        """
        api = _Api.for_account(account)
        text = reply.text.strip()
        if reply.visibility == "private":
            messages = api.call(
                "GET",
                "chat.bsky.convo.getMessages",
                chat=True,
                params={"convoId": _convo_id(api, reply), "limit": str(LOOKUP_SIZE)},
            ).json()["messages"]
            for message in messages:
                sender = (message.get("sender") or {}).get("did")
                sent = str(message.get("text") or "").strip()
                if sender == account.external_id and sent == text:
                    return DeliveryResult(
                        external_id=message["id"], sent_at=_time(message["sentAt"])
                    )
            return None
        feed = api.call(
            "GET",
            "app.bsky.feed.getAuthorFeed",
            params={
                "actor": account.external_id,
                "filter": "posts_with_replies",
                "limit": str(LOOKUP_SIZE),
            },
        ).json()["feed"]
        for entry in feed:
            post = entry["post"]
            record = post.get("record") or {}
            parent = ((record.get("reply") or {}).get("parent") or {}).get("uri")
            if parent == reply.in_reply_to and record.get("text", "").strip() == text:
                return DeliveryResult(
                    external_id=post["uri"],
                    url=post_url(post["uri"], account.handle),
                    sent_at=_time(record["createdAt"]),
                )
        return None


def _other_notification(notification: Json, *, own_did: str) -> InboundItem | None:
    if notification.get("reason") not in KINDS:
        return None
    if notification["author"]["did"] == own_did:
        return None
    return parse_notification(notification)


def parse_notification(notification: Json) -> InboundItem:
    """A mention, reply or quote notification as a public item (a mention or a
    quote `mentions_account`; a reply is a comment). ValueError when malformed."""
    with malformed_as_value_error("the Bluesky notification"):
        return _notification_item(notification)


def _notification_item(notification: Json) -> InboundItem:
    author = notification["author"]
    record = notification.get("record") or {}
    reply = record.get("reply") or {}
    uri = notification["uri"]
    langs = record.get("langs") or [""]
    return InboundItem(
        platform="bluesky",
        external_id=uri,
        author=Author(
            external_id=author["did"],
            handle=author.get("handle") or "",
            display_name=author.get("displayName") or "",
            profile_url=f"{WEB}/profile/{author.get('handle') or author['did']}",
        ),
        text=record.get("text") or "",
        created_at=_time(record.get("createdAt") or notification["indexedAt"]),
        visibility="public",
        kind=KINDS.get(notification["reason"], "post"),
        thread_ref=(reply.get("root") or {}).get("uri") or uri,
        in_reply_to=(reply.get("parent") or {}).get("uri") or "",
        # A quote of the account's post is addressed to it, as on X; without this,
        # ingest would treat it as an untagged post needing a listening rule.
        mentions_account=notification["reason"] in ("mention", "quote"),
        url=post_url(uri, author.get("handle") or ""),
        language=langs[0],
        raw=notification,
    )


def parse_chat_log(log: Json) -> InboundItem | None:
    """A chat log entry as a private item; None unless it created a live message.
    ValueError when malformed."""
    with malformed_as_value_error("the Bluesky chat log entry"):
        return _chat_item(log)


def _chat_item(log: Json) -> InboundItem | None:
    message = log.get("message") or {}
    if log.get("$type") != CREATE_MESSAGE_LOG or "text" not in message:
        return None
    if message.get("$type", MESSAGE_VIEW) != MESSAGE_VIEW:
        return None
    did = message["sender"]["did"]
    return InboundItem(
        platform="bluesky",
        external_id=message["id"],
        author=Author(external_id=did, profile_url=f"{WEB}/profile/{did}"),
        text=message["text"],
        created_at=_time(message["sentAt"]),
        visibility="private",
        kind="direct_message",
        thread_ref=log["convoId"],
        raw=log,
    )


def post_url(uri: str, handle: str) -> str:
    """The bsky.app page of a post `at://<did>/app.bsky.feed.post/<rkey>`."""
    did, _, rest = uri.removeprefix("at://").partition("/")
    return f"{WEB}/profile/{handle or did}/post/{rest.rpartition('/')[2]}"


def _new_notifications(api: _Api, since: PollCursor) -> list[Json]:
    fresh: list[Json] = []
    page_cursor = ""
    for _ in range(MAX_PAGES):
        params: dict[str, str | list[str]] = {
            "limit": str(PAGE_SIZE),
            "reasons": list(KINDS),
        }
        if page_cursor:
            params["cursor"] = page_cursor
        body = api.call(
            "GET", "app.bsky.notification.listNotifications", params=params
        ).json()
        page = _indexed(body.get("notifications"))
        new = [n for n in page if since.is_new(n)]
        fresh.extend(new)
        page_cursor = body.get("cursor") or ""
        if not since.newest or not page_cursor or not page or len(new) < len(page):
            break
    return fresh


def _indexed(notifications: object) -> list[Json]:
    """The notifications of a page that the cursor can place (a time and a uri);
    the others are left out (logged)."""
    placed: list[Json] = []
    for notification in notifications if isinstance(notifications, list) else []:
        try:
            with malformed_as_value_error("bluesky notification"):
                if _time(notification["indexedAt"]).tzinfo is None:
                    raise ValueError("indexedAt has no time zone")
                _short(notification["uri"])
        except ValueError as exc:
            logger.warning("skipped a malformed bluesky notification: %s", exc)
            continue
        placed.append(notification)
    return placed


def _new_chat_logs(api: _Api, cursor: str) -> tuple[list[Json], str]:
    """Chat log entries after `cursor` and the cursor to continue from."""
    logs: list[Json] = []
    first = not cursor
    for _ in range(MAX_PAGES):
        body = api.call(
            "GET",
            "chat.bsky.convo.getLog",
            chat=True,
            params={"cursor": cursor} if cursor else {},
        ).json()
        page = body.get("logs") or []
        logs.extend(page)
        following = str(body.get("cursor") or (page[-1]["rev"] if page else cursor))
        done = first or not page or following == cursor
        cursor = following
        if done:
            break
    return logs, cursor


def _chat_items(logs: list[Json], own_did: str) -> list[InboundItem]:
    items: dict[str, InboundItem] = {}
    for item in parsed_each("bluesky chat log entry", parse_chat_log, logs):
        if item.author.external_id != own_did:
            items.setdefault(item.external_id, item)
    return list(items.values())


def _with_profiles(api: _Api, items: list[InboundItem]) -> list[InboundItem]:
    """Fill handles, names and follower counts from `getProfiles`.

    Best effort: profiles only enrich, so a failure other than a dead session
    leaves the items as they are.
    """
    dids = sorted({item.author.external_id for item in items})
    profiles: dict[str, Json] = {}
    try:
        for start in range(0, len(dids), PROFILE_BATCH):
            batch = dids[start : start + PROFILE_BATCH]
            answer = api.call(
                "GET", "app.bsky.actor.getProfiles", params={"actors": batch}
            ).json()
            found = answer.get("profiles") if isinstance(answer, dict) else None
            profiles.update(
                (p["did"], p)
                for p in (found if isinstance(found, list) else [])
                if isinstance(p, dict) and isinstance(p.get("did"), str)
            )
    except ConnectorError as error:
        if error.auth:
            raise
        logger.warning("Bluesky profiles unavailable: %s", error.message)
    return [_enriched(item, profiles.get(item.author.external_id)) for item in items]


def _enriched(item: InboundItem, profile: Json | None) -> InboundItem:
    if profile is None:
        return item
    try:
        with malformed_as_value_error("bluesky profile"):
            return _with_profile(item, profile)
    except ValueError as exc:
        logger.warning("a malformed Bluesky profile left out: %s", exc)
        return item


def _with_profile(item: InboundItem, profile: Json) -> InboundItem:
    handle = profile.get("handle") or item.author.handle
    author = replace(
        item.author,
        handle=handle,
        display_name=profile.get("displayName") or item.author.display_name,
        followers=int(profile.get("followersCount") or 0),
        profile_url=f"{WEB}/profile/{handle or item.author.external_id}",
    )
    return replace(item, author=author)


def _reply_refs(api: _Api, uri: str) -> tuple[Json, Json]:
    """(root, parent) strong refs for a reply to the post `uri`.

    The parent's own `reply.root` is the thread root; a post that is not a reply is
    its own root.
    """
    if not uri:
        raise ConnectorError(
            "A Bluesky reply needs the post it answers.", permanent=True
        )
    posts = api.call("GET", "app.bsky.feed.getPosts", params={"uris": [uri]}).json()
    if not posts.get("posts"):
        raise ConnectorError(
            "The Bluesky post being answered no longer exists.", permanent=True
        )
    post = posts["posts"][0]
    parent = {"uri": post["uri"], "cid": post["cid"]}
    root = ((post.get("record") or {}).get("reply") or {}).get("root") or parent
    return {"uri": root["uri"], "cid": root["cid"]}, parent


def _convo_id(api: _Api, reply: OutboundReply) -> str:
    """The chat conversation: `in_reply_to` when it is one, else the recipient's."""
    answered = reply.in_reply_to
    if answered and not answered.startswith("at://"):
        return answered
    if not reply.recipient_id:
        raise ConnectorError(
            "A Bluesky direct message needs the recipient's DID.", permanent=True
        )
    convo = api.call(
        "GET",
        "chat.bsky.convo.getConvoForMembers",
        chat=True,
        params={"members": [reply.recipient_id]},
    ).json()
    return str(convo["convo"]["id"])


def _token_set(session: Json) -> TokenSet:
    return TokenSet(
        access_token=session["accessJwt"],
        refresh_token=session["refreshJwt"],
        expires_at=_jwt_expiry(session["accessJwt"]),
        account_external_id=session["did"],
        handle=session["handle"],
    )


def _jwt_expiry(token: str) -> datetime | None:
    """The `exp` claim of a JWT, unverified: only to schedule the refresh."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(
            base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        )
        return datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
    except (ValueError, TypeError, KeyError):
        return None


def _error_code(error: ConnectorError) -> str:
    body = error.json()
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def _seconds_until_epoch(reset: str) -> float | None:
    try:
        moment = float(reset)
    except ValueError:
        return None
    return max(0.0, moment - timezone.now().timestamp())


def _short(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:12]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)
