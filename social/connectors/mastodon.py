"""Mastodon: per-instance OAuth apps, mention notifications, statuses as replies.

Every instance is its own server: Earshot registers an app on each
(`register_app`), and `AppSecrets.base_url` / `AccountRef.base_url` is the instance.
Inbound is a mention notification, polled (`GET /api/v1/notifications`) or streamed
(`parse_sse` parses `GET /api/v1/streaming/user/notification` frames). A status with
`direct` visibility is a private message; anything else is public.

Replies are statuses (`POST /api/v1/statuses`) with `in_reply_to_id`. Mastodon adds
no mention by itself, so the customer's `@acct` is prefixed when the text lacks it.
Public replies are posted `unlisted`: they stay in the thread and reach the customer
but stay off public timelines and hashtag feeds, where a support exchange has no
place; a reply to a followers-only post is followers-only, so the brand never widens
the customer's audience. Private replies are `direct`. The `Idempotency-Key` header
carries `OutboundReply.client_ref`: Mastodon answers a replayed key (for about an
hour) with the status it already created.

Rate limit: 300 requests per 5 minutes per account; `X-RateLimit-Reset` is an ISO
time, which social.http cannot read, so this module turns it into `retry_after`.
"""

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
from social.connectors.text import (
    load_json,
    malformed_as_value_error,
    parsed_each,
)
from tenants import netguard

logger = logging.getLogger(__name__)

APP_NAME = "Earshot"
APP_WEBSITE = "https://github.com/earshot-helpdesk"
SCOPES = "read:accounts read:notifications read:statuses write:statuses"
PAGE_SIZE = 40
# Pages per poll; a backlog beyond this is picked up by later polls.
MAX_PAGES = 5
LOOKUP_SIZE = 40

Json = dict[str, Any]
# Every instance is an address a workspace admin typed: all calls to it go through
# the SSRF guard, each connection pinned to the address it checked.
INSTANCE_POLICY = netguard.Policy(
    public_only="Earshot connects only to public Mastodon servers."
)


def instance_guard() -> netguard.Policy:
    """The SSRF policy of calls to Mastodon instances (social.http's `guard`)."""
    return INSTANCE_POLICY


class _Api:
    """Authenticated requests to one account's instance."""

    def __init__(self, account: AccountRef) -> None:
        token = account.credentials.get("access_token")
        if not token:
            raise ConnectorError(
                "The Mastodon account has no access token.", permanent=True, auth=True
            )
        if not account.base_url:
            raise ConnectorError(
                "The Mastodon account has no instance URL.", permanent=True
            )
        self.base = account.base_url.rstrip("/")
        self.token = str(token)
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        kwargs["headers"] = {**kwargs.get("headers", {}), **self.headers}
        try:
            return http.request(method, url, guard=instance_guard, **kwargs)
        except ConnectorError as error:
            if error.status == 429 and error.retry_after is None:
                error.retry_after = seconds_until(
                    error.headers.get("x-ratelimit-reset", "")
                )
            raise


def seconds_until(reset: str) -> float | None:
    """Seconds from now until an ISO timestamp (Mastodon's X-RateLimit-Reset)."""
    try:
        moment = datetime.fromisoformat(reset)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - timezone.now()).total_seconds())


@register_connector
class MastodonConnector(Connector):
    """Mentions and direct messages of one account on one Mastodon instance."""

    platform: ClassVar[str] = "mastodon"
    # A direct status mentioning anyone opens a private thread (start_private);
    # 500 characters is the default instance limit (the @-prefix counts, by its
    # username part only). Streaming exists; the poller is the fallback.
    capabilities: ClassVar[Capabilities] = Capabilities(
        public_reply=True,
        private_message=True,
        start_private=True,
        max_length=500,
        polling=True,
        streaming=True,
    )

    def register_app(self, instance_url: str, redirect_uri: str) -> AppSecrets:
        """Register Earshot on an instance (`POST /api/v1/apps`); store the result.

        Returns the instance's client id and secret with `base_url` set to the
        normalised instance URL. Raises ConnectorError when the instance refuses.
        """
        base = normalise_instance(instance_url)
        app = http.request(
            "POST",
            f"{base}/api/v1/apps",
            guard=instance_guard,
            json={
                "client_name": APP_NAME,
                "redirect_uris": redirect_uri,
                "scopes": SCOPES,
                "website": APP_WEBSITE,
            },
        ).json()
        return AppSecrets(
            client_id=app["client_id"],
            client_secret=app["client_secret"],
            base_url=base,
        )

    def authorize_url(
        self, app: AppSecrets, *, redirect_uri: str, state: str, code_challenge: str
    ) -> str:
        """The instance's consent page, with a PKCE S256 challenge (Mastodon ≥ 4.3)."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": app.client_id,
                "redirect_uri": redirect_uri,
                "scope": SCOPES,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{_instance(app)}/oauth/authorize?{query}"

    def exchange_code(
        self, app: AppSecrets, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        """Trade the code and PKCE verifier for a token, then verify_credentials.

        Raises ConnectorError (permanent) when the instance refuses the code or the
        verifier.
        """
        base = _instance(app)
        token = http.request(
            "POST",
            f"{base}/oauth/token",
            guard=instance_guard,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
                "scope": SCOPES,
            },
        ).json()
        me = _verify(base, token["access_token"])
        return TokenSet(
            access_token=token["access_token"],
            account_external_id=str(me["id"]),
            handle=me["acct"],
            display_name=me.get("display_name") or "",
            extra={"scope": token.get("scope", SCOPES)},
        )

    def refresh(self, app: AppSecrets, account: AccountRef) -> TokenSet:
        """Mastodon tokens do not expire: check the token still works, return it.

        Raises ConnectorError (auth) when it was revoked, so the account is marked
        for re-authorization.
        """
        api = _Api(account)
        me = api.call("GET", "/api/v1/accounts/verify_credentials").json()
        return TokenSet(
            access_token=api.token,
            account_external_id=str(me["id"]),
            handle=me["acct"],
            display_name=me.get("display_name") or "",
            extra={"scope": account.credentials.get("scope", SCOPES)},
        )

    def revoke(self, app: AppSecrets, account: AccountRef) -> None:
        """Revoke the access token on its instance (`POST /oauth/revoke` with the
        instance app's client id and secret). Raises ConnectorError when the
        instance refuses or cannot be reached."""
        token = str(account.credentials.get("access_token") or "")
        if not token:
            raise ConnectorError(
                "The Mastodon account has no token to revoke.", permanent=True
            )
        base = (account.base_url or _instance(app)).rstrip("/")
        http.request(
            "POST",
            f"{base}/oauth/revoke",
            guard=instance_guard,
            data={
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "token": token,
            },
        )

    def fetch_since(self, account: AccountRef, cursor: str) -> FetchResult:
        """Mention notifications newer than `cursor` (a notification id), oldest first.

        Follows the Link header's `next` page, keeping `since_id`, until the cursor is
        reached; the first poll reads one page. Replies get their thread root from
        `resolve_threads`. Raises ConnectorError; the cursor is then not advanced.
        """
        api = _Api(account)
        found: dict[str, Json] = {}
        url = "/api/v1/notifications"
        params = [("types[]", "mention"), ("limit", str(PAGE_SIZE))]
        if cursor:
            params.append(("since_id", cursor))
        for _ in range(MAX_PAGES):
            response = api.call("GET", url, params=params)
            notifications = _identified(response.json())
            page = [n for n in notifications if _newer(str(n["id"]), cursor)]
            found.update((str(n["id"]), n) for n in page)
            following = response.links.get("next", {}).get("url")
            if not (cursor and following and page) or len(page) < len(notifications):
                break
            url, params = _next_page(following, cursor)
        ordered = sorted(found.values(), key=lambda n: _id_key(str(n["id"])))
        items = parsed_each("mastodon notification", parse_notification, ordered)
        newest = str(ordered[-1]["id"]) if ordered else cursor
        return FetchResult(items=self.resolve_threads(account, items), cursor=newest)

    def parse_sse(self, lines: Iterable[str]) -> list[InboundItem]:
        """The mention items in a chunk of the user notification stream.

        Frames are `event:`/`data:` lines ended by a blank line; lines starting with
        ":" (`:thump` heartbeats) are ignored, as are other events and notification
        types. Pure: replies carry their parent as thread_ref (or the root when the
        parent is in the same chunk); pass them through `resolve_threads` before
        ingesting. A frame whose data is not a notification is left out (logged).
        """
        frames: list[str] = []
        event = ""
        data: list[str] = []
        for raw in [*lines, ""]:
            line = raw.rstrip("\r\n")
            if not line:
                if event == "notification" and data:
                    frames.append("\n".join(data))
                event, data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        items = parsed_each(
            "mastodon stream frame",
            lambda frame: parse_notification(load_json(frame)),
            frames,
        )
        return _chain_roots(items)

    def resolve_threads(
        self, account: AccountRef, items: list[InboundItem]
    ) -> list[InboundItem]:
        """Set each reply's thread_ref to its thread's root status.

        Parents in the batch are followed first; then one
        `GET /api/v1/statuses/:id/context` per distinct parent outside it, whose first
        ancestor is the root (none: the parent is the root). A parent that is gone
        (404) stays the root. Raises ConnectorError for other failures.
        """
        chained = _chain_roots(items)
        # A reply whose parent is not in the batch anchors its chain to that parent.
        anchors = {
            item.thread_ref
            for item in chained
            if item.in_reply_to and item.thread_ref == item.in_reply_to
        }
        if not anchors:
            return chained
        api = _Api(account)
        roots = {anchor: _root_of(api, anchor) for anchor in sorted(anchors)}
        return [
            replace(item, thread_ref=roots.get(item.thread_ref, item.thread_ref))
            for item in chained
        ]

    engagement_batch: ClassVar[int] = 20
    # 300 requests per 5 minutes per account, shared with everything else: a fifth.
    engagement_limit: ClassVar[SendLimit | None] = SendLimit(60, 300, "engagement")

    def read_engagement(
        self, account: AccountRef, post_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """`GET /api/v1/statuses?id[]=..` (Mastodon 4.3+, up to 20 ids): reblogs,
        favourites, replies and quotes (4.5+) per status. Statuses deleted or not
        visible to the account are not in the list. Raises ConnectorError (a 429
        waits until X-RateLimit-Reset)."""
        statuses = (
            _Api(account)
            .call("GET", "/api/v1/statuses", params=[("id[]", i) for i in post_ids])
            .json()
        )
        found: dict[str, Engagement] = {}
        for status in statuses if isinstance(statuses, list) else []:
            try:
                found[str(status["id"])] = engagement_from(
                    status,
                    reposts="reblogs_count",
                    likes="favourites_count",
                    replies="replies_count",
                    quotes="quotes_count",
                )
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning("Mastodon statuses: malformed status left out: %r", exc)
        return found

    def send_limit(self, account: AccountRef, reply: OutboundReply) -> SendLimit:
        """300 requests per 5 minutes per account (platforms.md section 9)."""
        return SendLimit(300, 300, "api")

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        """Post the reply as a status in the customer's thread.

        Looks up the answered status (author and visibility) or the recipient to
        prefix `@acct` when the text lacks it. Sends `Idempotency-Key: client_ref`,
        so a retried send returns the status already created. Raises ConnectorError
        (permanent on a validation error, such as text over the instance's limit).
        """
        api = _Api(account)
        if not reply.in_reply_to and not reply.recipient_id:
            raise ConnectorError(
                "A Mastodon reply needs a status to answer or a recipient.",
                permanent=True,
            )
        acct, parent_visibility = _target(api, account, reply)
        body: Json = {
            "status": with_mention(reply.text, acct),
            "visibility": _visibility(reply.visibility, parent_visibility),
        }
        if reply.in_reply_to:
            body["in_reply_to_id"] = reply.in_reply_to
        status = api.call(
            "POST",
            "/api/v1/statuses",
            json=body,
            headers={"Idempotency-Key": reply.client_ref},
        ).json()
        return _delivery(status)

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        """The account's recent status answering the same status with the same text.

        Re-posting with the Idempotency-Key would create the status when it is
        missing, which a lookup must not do; so this reads
        `GET /api/v1/accounts/:id/statuses` (the owner sees its direct statuses too).
        Mentions are left out of the comparison. None when absent.
        """
        api = _Api(account)
        statuses = api.call(
            "GET",
            f"/api/v1/accounts/{account.external_id}/statuses",
            params={"limit": str(LOOKUP_SIZE), "exclude_reblogs": "true"},
        ).json()
        wanted = _comparable(reply.text)
        for status in statuses:
            if str(status.get("in_reply_to_id") or "") != reply.in_reply_to:
                continue
            if _comparable(html_to_text(status.get("content") or "")) == wanted:
                return _delivery(status)
        return None


def parse_notification(notification: Json) -> InboundItem | None:
    """A mention notification as an item; None for other notification types.

    Direct visibility is private, anything else public. thread_ref is the status
    itself, or its parent for a reply (resolve_threads finds the root).
    ValueError when it is malformed.
    """
    with malformed_as_value_error("the Mastodon notification"):
        return _notification_item(notification)


def _notification_item(notification: Json) -> InboundItem | None:
    status = notification.get("status")
    if notification.get("type") != "mention" or not status:
        return None
    account = notification["account"]
    private = status.get("visibility") == "direct"
    parent = str(status.get("in_reply_to_id") or "")
    text = html_to_text(status.get("content") or "")
    if status.get("spoiler_text"):
        text = f"CW: {status['spoiler_text']}\n\n{text}"
    return InboundItem(
        platform="mastodon",
        external_id=str(status["id"]),
        author=Author(
            external_id=str(account["id"]),
            handle=account["acct"],
            display_name=account.get("display_name") or "",
            followers=int(account.get("followers_count") or 0),
            profile_url=account.get("url") or "",
        ),
        text=text,
        created_at=_parse_time(status.get("created_at") or notification["created_at"]),
        visibility="private" if private else "public",
        kind="direct_message" if private else "mention",
        thread_ref=parent or str(status["id"]),
        in_reply_to=parent,
        mentions_account=True,
        url=status.get("url") or "",
        language=status.get("language") or "",
        raw=notification,
    )


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _identified(answer: object) -> list[Json]:
    """The notifications of a page that have an id (the cursor's key)."""
    if not isinstance(answer, list):
        raise ConnectorError("The notifications page is not a list.")
    return [
        n for n in answer if isinstance(n, dict) and isinstance(n.get("id"), str | int)
    ]


def html_to_text(content: str) -> str:
    """Mastodon's status HTML as plain text: paragraphs and line breaks kept, tags
    dropped, entities decoded. Link text is kept whole (the `invisible` spans hold
    the parts of long URLs Mastodon hides on screen)."""
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    text = "".join(parser.parts)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def with_mention(text: str, acct: str) -> str:
    """`text` addressed to `acct`: prefixed with "@acct " unless it mentions it."""
    if not acct:
        return text
    mentioned = re.search(
        rf"(?<![\w@])@{re.escape(acct)}(?![\w@.-])", text, flags=re.IGNORECASE
    )
    return text if mentioned else f"@{acct} {text}"


def normalise_instance(instance_url: str) -> str:
    """An instance address as a base URL: https:// unless given, no trailing slash."""
    url = instance_url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


def _chain_roots(items: list[InboundItem]) -> list[InboundItem]:
    """Follow in_reply_to through the batch so replies to batch items share a root."""
    by_id = {item.external_id: item for item in items}
    chained = []
    for item in items:
        root = item
        seen = {item.external_id}
        while root.in_reply_to in by_id and root.in_reply_to not in seen:
            root = by_id[root.in_reply_to]
            seen.add(root.external_id)
        chained.append(replace(item, thread_ref=root.thread_ref))
    return chained


def _root_of(api: _Api, status_id: str) -> str:
    """The root of the thread `status_id` is in (itself when it has no ancestors)."""
    try:
        context = api.call("GET", f"/api/v1/statuses/{status_id}/context").json()
    except ConnectorError as error:
        if error.status == 404:
            return status_id
        raise
    ancestors = context.get("ancestors") or []
    return str(ancestors[0]["id"]) if ancestors else status_id


def _target(api: _Api, account: AccountRef, reply: OutboundReply) -> tuple[str, str]:
    """(the acct to address, the answered status's visibility)."""
    acct, visibility = "", ""
    if reply.in_reply_to:
        parent = api.call("GET", f"/api/v1/statuses/{reply.in_reply_to}").json()
        visibility = str(parent.get("visibility") or "")
        author = parent.get("account") or {}
        if str(author.get("id")) != account.external_id:
            acct = str(author.get("acct") or "")
    if not acct and reply.recipient_id:
        recipient = api.call("GET", f"/api/v1/accounts/{reply.recipient_id}").json()
        acct = str(recipient.get("acct") or "")
    return acct, visibility


def _visibility(reply_visibility: str, parent_visibility: str) -> str:
    if reply_visibility == "private":
        return "direct"
    return "private" if parent_visibility == "private" else "unlisted"


def _verify(base: str, token: str) -> Json:
    me: Json = http.request(
        "GET",
        f"{base}/api/v1/accounts/verify_credentials",
        guard=instance_guard,
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return me


def _delivery(status: Json) -> DeliveryResult:
    return DeliveryResult(
        external_id=str(status["id"]),
        url=status.get("url") or "",
        sent_at=_parse_time(status["created_at"]) if status.get("created_at") else None,
    )


def _comparable(text: str) -> str:
    """Text without leading mentions and with whitespace collapsed: what a sent
    reply and its rendering (remote mentions shown as @user only) share."""
    words = text.split()
    while words and words[0].startswith("@"):
        words.pop(0)
    return " ".join(words)


def _instance(app: AppSecrets) -> str:
    if not app.base_url:
        raise ConnectorError(
            "Register Earshot on the Mastodon instance first (register_app).",
            permanent=True,
        )
    return app.base_url.rstrip("/")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _next_page(link: str, since_id: str) -> tuple[str, list[tuple[str, str]]]:
    """The Link header's next page as (url, params), keeping `since_id`.

    Mastodon's next link carries max_id but drops since_id; httpx replaces a URL's
    query with `params`, so the query is split out and passed whole.
    """
    parts = urlsplit(link)
    params = [(k, v) for k, v in parse_qsl(parts.query) if k != "since_id"]
    return urlunsplit(parts._replace(query="")), [*params, ("since_id", since_id)]


def _id_key(status_id: str) -> tuple[int, str]:
    """Mastodon ids are numeric strings: order by length, then text."""
    return len(status_id), status_id


def _newer(status_id: str, cursor: str) -> bool:
    return not cursor or _id_key(status_id) > _id_key(cursor)
