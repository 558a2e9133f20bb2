"""The X (Twitter) connector: webhooks, mention polling, replies and DMs, OAuth 2.0.

A pure adapter (house rule 11): no database, and every call goes through
`social.http.request`, which maps 401/429/5xx/4xx onto ConnectorError. X's own error
bodies (problem+json `detail`, OAuth `error_description`) become the message there,
so nothing X-specific is added on top, except that a refused refresh means re-auth.

Decisions (platforms.md section 3):
- Webhooks: the Account Activity API (v1.1-shaped `tweet_create_events`,
  `direct_message_events`, `users`) and the X Activity API envelope (`data.event_uuid`,
  `data.payload`, `data.includes`). Both are signed with the app's consumer secret,
  which is `AppSecrets.client_secret`. The account addressed is `for_user_id` or
  `data.filter.user_id`; the brand's own posts and DMs (echoes) are skipped, and so
  are plain retweets, which carry no message.
- `thread_ref`: v2 posts carry the thread root (`conversation_id`); v1.1 posts do not,
  so the parent (`in_reply_to_status_id_str`) stands in, or the post itself.
- DMs: `thread_ref` is the one-to-one `dm_conversation_id` ("<smaller>-<larger>" user
  id, the form v2 returns), computed when an AAA event lacks it, so webhook, poll and
  send all name the same thread. The other participant is recoverable from it.
- `mentions_account`: the post @mentions the account (entity ids), replies to one of
  its posts (X puts the @handle in a reply's text), or quotes it. That is what X's
  self-serve tier calls "summoned", and only then is a public reply allowed.
- `kind`: "comment" for a direct reply to the brand's post, "mention" when summoned
  otherwise (everything on the mentions timeline), "post" for untagged search hits.
- Listening: `search_public` turns a brand's search terms into one recent-search
  query (`search_query`, at most 512 characters, retweets and the brand's own posts
  excluded); the poller keeps its cursor apart from the mentions cursor.
- Delivery: X has no idempotency key. `find_delivery` reads the account's own recent
  posts (or the DM thread) inside RECONCILE_WINDOW for the same reply; it returns None
  only when the whole window was read, and raises when it could not be.
"""

import base64
import hashlib
import hmac
import html
import json
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit

from django.utils import timezone

from social.connectors import register_connector
from social.connectors.base import (
    UNPARSED,
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
    WebhookItem,
    delivery_object,
    engagement_from,
    hmac_sha256,
    search_tokens,
)
from social.connectors.text import (
    malformed_as_value_error,
    parsed_each,
)
from social.http import request

logger = logging.getLogger(__name__)

API_BASE = "https://api.x.com"
AUTHORIZE_BASE = "https://x.com"
SIGNATURE_HEADER = "x-twitter-webhooks-signature"
SCOPES = "tweet.read tweet.write users.read dm.read dm.write offline.access"
POST_FIELDS = (
    "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,"
    "entities,lang,note_tweet"
)
USER_FIELDS = "username,name,public_metrics"
DM_EVENT_FIELDS = "id,text,sender_id,created_at,dm_conversation_id,entities"
EXPANSIONS = "author_id,referenced_tweets.id"
PAGE_SIZE = 100
# The mentions timeline holds at most 800 posts: 8 pages of 100.
MAX_PAGES = 10
RECONCILE_WINDOW = timedelta(hours=48)
RECONCILE_PAGES = 5
SEARCH_QUERY_LIMIT = 512  # characters of a recent-search query
# Recent search reaches back 7 days; a minute less, so the edge computed here is
# still inside X's window when the request arrives.
SEARCH_WINDOW = timedelta(days=7) - timedelta(minutes=1)
SNOWFLAKE_EPOCH_MS = 1288834974657
_SPACES = re.compile(r"\s+")
_USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")
_POST_ID = re.compile(r"[0-9]{1,19}")


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _id_key(post_id: str) -> tuple[int, str]:
    """Sort key for X's numeric string ids (up to 19 digits) without int overflow."""
    return (len(post_id), post_id)


def _newer(post_id: str, cursor: str) -> bool:
    return not cursor or _id_key(post_id) > _id_key(cursor)


def _post_time(post_id: str) -> datetime | None:
    """When a post was created, read from its id (a Snowflake: milliseconds since
    X's epoch in the bits above the lowest 22); None for anything else."""
    if not post_id.isdigit():
        return None
    millis = (int(post_id) >> 22) + SNOWFLAKE_EPOCH_MS
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def _iso(value: object) -> datetime:
    if not value:
        raise ValueError("The post has no created_at.")
    return datetime.fromisoformat(_str(value).replace("Z", "+00:00"))


def _millis(value: object) -> datetime:
    return datetime.fromtimestamp(_int(value) / 1000, tz=UTC)


def _post_url(handle: str, post_id: str) -> str:
    if handle:
        return f"https://x.com/{handle}/status/{post_id}"
    return f"https://x.com/i/web/status/{post_id}"


def sign(secret: str, message: bytes) -> str:
    """`sha256=` + base64 HMAC-SHA256, the form of X's CRC token and signatures."""
    return "sha256=" + base64.b64encode(hmac_sha256(secret, message)).decode()


def dm_conversation_id(first: str, second: str) -> str:
    """X's one-to-one DM conversation id: the two user ids, smaller first."""
    return "-".join(sorted((first, second), key=_id_key))


def _other_participant(thread: str, me: str) -> str:
    parts = thread.split("-")
    if len(parts) == 2 and me in parts:
        return parts[1] if parts[0] == me else parts[0]
    return thread


def _author(user: dict[str, Any], user_id: str = "") -> Author:
    """An Author from a v1.1 user, a v2 user, or a v2 user wrapped in {"data": …}."""
    data = _obj(user.get("data")) or user
    handle = _str(data.get("username") or data.get("screen_name"))
    metrics = _obj(data.get("public_metrics"))
    return Author(
        external_id=_str(data.get("id_str") or data.get("id") or user_id),
        handle=handle,
        display_name=_str(data.get("name")),
        followers=_int(metrics.get("followers_count", data.get("followers_count", 0))),
        profile_url=f"https://x.com/{handle}" if handle else "",
    )


def _users(listing: object) -> dict[str, Author]:
    """Authors by id from `includes.users` (a list) or AAA `users` (a map)."""
    if isinstance(listing, dict):
        return {key: _author(_obj(value), key) for key, value in listing.items()}
    authors = (_author(user) for user in _dicts(listing))
    return {author.external_id: author for author in authors}


def _kind(reply_to_user: str, account_id: str, mentions: bool) -> str:
    if reply_to_user == account_id:
        return "comment"
    return "mention" if mentions else "post"


def _v2_item(
    post: dict[str, Any],
    users: dict[str, Author],
    account_id: str,
    *,
    tweets: dict[str, dict[str, Any]],
    mentioned: bool = False,
) -> InboundItem | None:
    """A v2 post (XAA payload, mentions, search) as an item; None for our own."""
    author_id = _str(post.get("author_id"))
    post_id = _str(post.get("id"))
    if not post_id or not author_id or author_id == account_id:
        return None
    references = _dicts(post.get("referenced_tweets"))
    parent = _str(post.get("in_reply_to_tweet_id")) or next(
        (_str(r.get("id")) for r in references if r.get("type") == "replied_to"), ""
    )
    quoted = {
        _str(tweets.get(_str(r.get("id")), {}).get("author_id"))
        for r in references
        if r.get("type") == "quoted"
    }
    mention_ids = {
        _str(m.get("id")) for m in _dicts(_obj(post.get("entities")).get("mentions"))
    }
    reply_to_user = _str(post.get("in_reply_to_user_id"))
    mentions = (
        mentioned
        or account_id in mention_ids
        or account_id in quoted
        or reply_to_user == account_id
    )
    author = users.get(author_id) or Author(external_id=author_id)
    return InboundItem(
        platform="x",
        external_id=post_id,
        author=author,
        text=_str(_obj(post.get("note_tweet")).get("text") or post.get("text")),
        created_at=_iso(post.get("created_at")),
        visibility="public",
        kind=_kind(reply_to_user, account_id, mentions),
        thread_ref=_str(post.get("conversation_id")) or parent or post_id,
        in_reply_to=parent,
        mentions_account=mentions,
        url=_post_url(author.handle, post_id),
        language=_str(post.get("lang")),
        raw=post,
    )


def _v1_item(tweet: dict[str, Any], account_id: str) -> InboundItem | None:
    """An AAA `tweet_create_events` entry (a v1.1 Tweet) as an item."""
    author = _author(_obj(tweet.get("user")))
    tweet_id = _str(tweet.get("id_str"))
    if not tweet_id or author.external_id in ("", account_id):
        return None
    if "retweeted_status" in tweet:
        return None
    extended = _obj(tweet.get("extended_tweet"))
    entities = _obj(extended.get("entities")) or _obj(tweet.get("entities"))
    mention_ids = {_str(m.get("id_str")) for m in _dicts(entities.get("user_mentions"))}
    quoted = _str(_obj(_obj(tweet.get("quoted_status")).get("user")).get("id_str"))
    reply_to_user = _str(tweet.get("in_reply_to_user_id_str"))
    mentions = (
        account_id in mention_ids or quoted == account_id or reply_to_user == account_id
    )
    parent = _str(tweet.get("in_reply_to_status_id_str"))
    if tweet.get("timestamp_ms"):
        created = _millis(tweet["timestamp_ms"])
    else:
        created = datetime.strptime(
            _str(tweet.get("created_at")), "%a %b %d %H:%M:%S %z %Y"
        )
    return InboundItem(
        platform="x",
        external_id=tweet_id,
        author=author,
        text=_str(
            extended.get("full_text") or tweet.get("full_text") or tweet.get("text")
        ),
        created_at=created,
        visibility="public",
        kind=_kind(reply_to_user, account_id, mentions),
        thread_ref=parent or tweet_id,
        in_reply_to=parent,
        mentions_account=mentions,
        url=_post_url(author.handle, tweet_id),
        language=_str(tweet.get("lang")),
        raw=tweet,
    )


def _dm_item(
    event: dict[str, Any], users: dict[str, Author], account_id: str
) -> InboundItem | None:
    """A DM event, AAA-shaped (`message_create`) or v2-shaped (`MessageCreate`)."""
    create = _obj(event.get("message_create"))
    if create:
        sender = _str(create.get("sender_id"))
        other = _str(_obj(create.get("target")).get("recipient_id")) or account_id
        text = _str(_obj(create.get("message_data")).get("text"))
        created = _millis(event.get("created_timestamp"))
        thread = _str(event.get("dm_conversation_id"))
    elif event.get("event_type") == "MessageCreate":
        sender = _str(event.get("sender_id"))
        other = account_id
        text = _str(event.get("text"))
        created = _iso(event.get("created_at"))
        thread = _str(event.get("dm_conversation_id"))
    else:
        return None
    event_id = _str(event.get("id"))
    if not event_id or not sender or sender == account_id:
        return None
    return InboundItem(
        platform="x",
        external_id=event_id,
        author=users.get(sender) or Author(external_id=sender),
        text=text,
        created_at=created,
        visibility="private",
        kind="direct_message",
        thread_ref=thread or dm_conversation_id(sender, other),
        raw=event,
    )


def _normalized(text: str, entities: dict[str, Any] | None = None) -> str:
    """Text compared loosely: HTML entities unescaped, t.co links expanded."""
    for link in _dicts(_obj(entities).get("urls")):
        if link.get("url") and link.get("expanded_url"):
            text = text.replace(_str(link["url"]), _str(link["expanded_url"]))
    return _SPACES.sub(" ", html.unescape(text)).strip()


def search_query(terms: Sequence[str], handle: str) -> tuple[str, list[str]]:
    """The recent-search query for listening terms, and the terms left out.

    `(t1 OR t2 OR ...) -is:retweet -from:<handle>`: phrases stay quoted, a term of
    several tokens is a parenthesised group (X's AND), `#tag` and `@user` are X's
    own operators. Terms are taken in order while the query stays within
    SEARCH_QUERY_LIMIT characters; a term that would not fit is left out and later,
    shorter ones are still tried. A mention of a name that is not an X username
    (`@acme.bsky.social`) cannot be searched here and is left out. The query is ""
    when no term is left.
    """
    excluded = " -is:retweet" + (
        f" -from:{handle}" if _USERNAME.fullmatch(handle) else ""
    )
    parts: list[str] = []
    left_out: list[str] = []
    for term in terms:
        rendered = _search_term(term)
        if (
            rendered is None
            or len(_query([*parts, rendered], excluded)) > SEARCH_QUERY_LIMIT
        ):
            left_out.append(term)
            continue
        parts.append(rendered)
    return (_query(parts, excluded) if parts else ""), left_out


def _search_term(term: str) -> str | None:
    tokens = search_tokens(term)
    if not tokens or any(
        token.startswith("@") and not _USERNAME.fullmatch(token[1:]) for token in tokens
    ):
        return None
    return tokens[0] if len(tokens) == 1 else f"({' '.join(tokens)})"


def _query(parts: list[str], excluded: str) -> str:
    either = parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})"
    return either + excluded


@register_connector
class XConnector(Connector):
    """X API v2 for one brand account (user-context OAuth 2.0 token)."""

    platform: ClassVar[str] = "x"
    capabilities: ClassVar[Capabilities] = Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        # Self-serve tier: API replies are refused unless the author summoned us.
        public_reply_needs_mention=True,
        # A post is 280 characters (weighted; the composer counts plain characters).
        max_length=280,
        webhooks=True,
        polling=True,
    )
    webhook_signature_header: ClassVar[str] = SIGNATURE_HEADER
    # Recent search finds the untagged posts no webhook or mention timeline brings.
    keyword_search: ClassVar[bool] = True

    # Webhooks

    def webhook_challenge(
        self, params: dict[str, str], app: AppSecrets
    ) -> tuple[int, str]:
        """Answer X's CRC check: 200 with {"response_token": "sha256=<b64 HMAC>"}.

        The HMAC is over `crc_token` with the consumer secret. 400 when the token is
        missing; 500 when no consumer secret is configured (X keeps retrying).
        """
        crc_token = params.get("crc_token", "")
        if not crc_token:
            return 400, ""
        if not app.client_secret:
            return 500, ""
        token = sign(app.client_secret, crc_token.encode())
        return 200, json.dumps({"response_token": token})

    def verify_webhook(
        self, body: bytes, headers: dict[str, str], app: AppSecrets
    ) -> bool:
        """Compare `x-twitter-webhooks-signature` with a base64 HMAC of the raw body.

        Constant-time; False when the header or the consumer secret is missing.
        """
        lowered = {key.lower(): value for key, value in headers.items()}
        header = lowered.get(SIGNATURE_HEADER, "")
        if not header or not app.client_secret:
            return False
        return hmac.compare_digest(sign(app.client_secret, body), header)

    def webhook_event_id(self, body: bytes, payload: Any = UNPARSED) -> str:
        """XAA: `data.event_uuid`. AAA: a SHA-256 of the addressed account and the ids
        of every event in the body (an event without an id counts by its content), so
        a redelivery of the same events gets the same id. ValueError when not JSON."""
        payload = delivery_object(body, payload)
        uuid = _str(_obj(payload.get("data")).get("event_uuid"))
        if uuid:
            return uuid
        keys = []
        for name, events in sorted(payload.items()):
            if not name.endswith("_events"):
                continue
            for event in _dicts(events):
                event_id = _str(event.get("id_str") or event.get("id"))
                keys.append(f"{name}:{event_id or json.dumps(event, sort_keys=True)}")
        if not keys:
            return hashlib.sha256(body).hexdigest()
        digest = "\n".join([_str(payload.get("for_user_id")), *sorted(keys)])
        return hashlib.sha256(digest.encode()).hexdigest()

    def parse_webhook(self, body: bytes) -> list[WebhookItem]:
        """Items of an AAA or XAA delivery; ValueError when it is neither.

        Only posts and DMs from other people become items; follows, likes, typing,
        read receipts, revokes, `dm.sent` and encrypted `chat.*` events are ignored.
        """
        payload = delivery_object(body)
        if "for_user_id" in payload:
            return self._account_activity(payload)
        data = _obj(payload.get("data"))
        if "event_type" in data:
            return self._activity_event(data, _obj(payload.get("includes")))
        raise ValueError("Not an X Account Activity or X Activity API delivery.")

    def _account_activity(self, payload: dict[str, Any]) -> list[WebhookItem]:
        account = _str(payload.get("for_user_id"))
        if not account:
            raise ValueError("The delivery has no for_user_id.")
        items = parsed_each(
            "X post",
            lambda tweet: _v1_item(tweet, account),
            _dicts(payload.get("tweet_create_events")),
        )
        users = _users(payload.get("users"))
        items += parsed_each(
            "X direct message",
            lambda event: _dm_item(event, users, account),
            _dicts(payload.get("direct_message_events")),
        )
        return [WebhookItem(account, item) for item in items]

    def _activity_event(
        self, data: dict[str, Any], outer_includes: dict[str, Any]
    ) -> list[WebhookItem]:
        account = _str(_obj(data.get("filter")).get("user_id"))
        if not account:
            raise ValueError("The X Activity event has no filter.user_id.")
        event_type = _str(data.get("event_type"))
        payload = _obj(data.get("payload"))
        includes = _obj(data.get("includes")) or outer_includes
        items: list[InboundItem] = []
        if event_type in ("post.mention.create", "post.reply.create"):
            tweets = {_str(t.get("id")): t for t in _dicts(includes.get("tweets"))}
            item = _v2_item(
                payload,
                _users(includes.get("users")),
                account,
                tweets=tweets,
                mentioned=event_type == "post.mention.create",
            )
            items += [item] if item is not None else []
        elif event_type == "dm.received":
            users = _users(payload.get("users") or includes.get("users"))
            items += parsed_each(
                "X direct message",
                lambda event: _dm_item(event, users, account),
                _dicts(payload.get("direct_message_events")),
            )
        return [WebhookItem(account, item) for item in items]

    # Polling

    def fetch_since(self, account: AccountRef, cursor: str) -> FetchResult:
        """Posts mentioning the account newer than `cursor` (a post id), oldest first.

        Reads `GET /2/users/:id/mentions` with `since_id` and follows `next_token`
        pages. The new cursor is the newest post id seen (the brand's own posts
        included, so they are not read again); unchanged when nothing is new.
        Raises ConnectorError (from social.http) on failure.
        """
        params = self._post_params()
        if cursor:
            params["since_id"] = cursor
        path = f"/2/users/{account.external_id}/mentions"
        # Everything on the mentions timeline names the account, even when the
        # entities do not show it, so every item counts as addressed to it.
        return self._collect(
            account, path, params, "pagination_token", cursor, mentioned=True
        )

    def search_public(
        self, account: AccountRef, terms: Sequence[str], cursor: str
    ) -> FetchResult:
        """Untagged posts containing any of `terms` newer than `cursor` (a post id).

        One recent-search query (`search_query`: the terms ORed, retweets and the
        account's own posts excluded, at most 512 characters); terms that do not
        fit or cannot be said on X are left out and logged. No request is made when
        no term is left. Cursor rules and errors as `search_recent`.
        """
        query, left_out = search_query(terms, account.handle)
        if left_out:
            logger.warning(
                "X search for @%s leaves out %s term(s): %s",
                account.handle,
                len(left_out),
                left_out,
            )
        if not query:
            return FetchResult(items=[], cursor=cursor)
        return self.search_recent(account, query, cursor)

    def search_recent(
        self, account: AccountRef, query: str, cursor: str
    ) -> FetchResult:
        """Posts matching `query` (untagged brand mentions) newer than `cursor`.

        `GET /2/tweets/search/recent` (last 7 days, query up to 512 characters) with
        `since_id`, following `next_token`; same cursor rules as fetch_since. X
        refuses a `since_id` older than the 7 days it searches, which a quiet
        search's cursor becomes, so such a cursor is sent as `start_time` at the
        window's edge instead (older posts are unreachable anyway).
        """
        params = {**self._post_params(), "query": query}
        edge = timezone.now() - SEARCH_WINDOW
        posted = _post_time(cursor)
        if posted is not None and posted < edge:
            params["start_time"] = edge.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif cursor:
            params["since_id"] = cursor
        return self._collect(
            account, "/2/tweets/search/recent", params, "next_token", cursor
        )

    @staticmethod
    def _post_params() -> dict[str, str]:
        return {
            "max_results": str(PAGE_SIZE),
            "tweet.fields": POST_FIELDS,
            "expansions": EXPANSIONS,
            "user.fields": USER_FIELDS,
        }

    def _collect(
        self,
        account: AccountRef,
        path: str,
        params: dict[str, str],
        page_param: str,
        cursor: str,
        *,
        mentioned: bool = False,
    ) -> FetchResult:
        found: dict[str, InboundItem] = {}
        newest = cursor
        token = ""
        for _page in range(MAX_PAGES):
            query = {**params, page_param: token} if token else params
            page = self._get(account, path, query)
            includes = _obj(page.get("includes"))
            users = _users(includes.get("users"))
            tweets = {_str(t.get("id")): t for t in _dicts(includes.get("tweets"))}
            for post in _dicts(page.get("data")):
                post_id = _str(post.get("id"))
                if not post_id or not _newer(post_id, cursor):
                    continue
                newest = post_id if _newer(post_id, newest) else newest
                try:
                    with malformed_as_value_error("X post"):
                        item = _v2_item(
                            post,
                            users,
                            account.external_id,
                            tweets=tweets,
                            mentioned=mentioned,
                        )
                except ValueError as exc:
                    logger.warning("skipped a malformed X post %s: %s", post_id, exc)
                    continue
                if item is not None:
                    found.setdefault(post_id, item)
            token = _str(_obj(page.get("meta")).get("next_token"))
            if not token:
                break
        else:
            logger.warning("X %s: stopped after %s pages", path, MAX_PAGES)
        items = sorted(found.values(), key=lambda item: _id_key(item.external_id))
        return FetchResult(items=items, cursor=newest)

    # Engagement

    engagement_batch: ClassVar[int] = 100
    # `GET /2/tweets` (post lookup) is not in platforms.md's table; 300 per 15
    # minutes is the lowest per-user read limit there, and a 429's reset wins.
    engagement_limit: ClassVar[SendLimit | None] = SendLimit(300, 900, "engagement")

    def read_engagement(
        self, account: AccountRef, post_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """`GET /2/tweets?ids=<up to 100>&tweet.fields=public_metrics`: retweets,
        likes, replies and quotes per post. Posts X no longer shows come back in
        `errors` ("Not Found Error") and are left out, and so are ids X would
        refuse the whole call for (not 1-19 digits): no call when none is left.
        Raises ConnectorError."""
        ids = [post_id for post_id in post_ids if _POST_ID.fullmatch(post_id)]
        if not ids:
            return {}
        page = self._get(
            account,
            "/2/tweets",
            {"ids": ",".join(ids), "tweet.fields": "public_metrics"},
        )
        found: dict[str, Engagement] = {}
        for post in _dicts(page.get("data")):
            try:
                found[_str(post["id"])] = engagement_from(
                    post["public_metrics"],
                    reposts="retweet_count",
                    likes="like_count",
                    replies="reply_count",
                    quotes="quote_count",
                )
            except (KeyError, ValueError) as exc:
                logger.warning("X post lookup: malformed metrics left out: %r", exc)
        return found

    # Sending

    def send_limit(self, account: AccountRef, reply: OutboundReply) -> SendLimit:
        """Per user: 100 posts and 15 direct messages per 15 minutes (the stricter
        table of platforms.md section 3.6)."""
        if reply.visibility == "public":
            return SendLimit(100, 900, "posts")
        return SendLimit(15, 900, "dm")

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        """Post a public reply (`POST /2/tweets`) or a DM
        (`POST /2/dm_conversations/with/:participant_id/messages`).

        Public replies need `reply.in_reply_to`; DMs go to `reply.recipient_id`, or
        to the other participant of the DM thread in `reply.in_reply_to`. Raises
        ConnectorError: permanent for a missing target, X's refusals (duplicate
        content, not summoned) and auth (401); retryable for 429 and 5xx.
        """
        if reply.visibility == "private":
            return self._send_dm(account, reply)
        if not reply.in_reply_to:
            raise ConnectorError(
                "An X reply needs the post it answers.", permanent=True
            )
        body = {
            "text": reply.text,
            "reply": {"in_reply_to_tweet_id": reply.in_reply_to},
        }
        data = _obj(self._post(account, "/2/tweets", body).get("data"))
        post_id = _str(data.get("id"))
        if not post_id:
            raise ConnectorError("X accepted the post but returned no id.")
        return DeliveryResult(
            external_id=post_id,
            url=_post_url(account.handle, post_id),
            sent_at=timezone.now(),
        )

    def _send_dm(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        participant = self._participant(account, reply)
        path = f"/2/dm_conversations/with/{participant}/messages"
        data = _obj(self._post(account, path, {"text": reply.text}).get("data"))
        event_id = _str(data.get("dm_event_id"))
        if not event_id:
            raise ConnectorError("X accepted the message but returned no id.")
        conversation = _str(data.get("dm_conversation_id"))
        return DeliveryResult(
            external_id=event_id,
            url=f"https://x.com/messages/{conversation}" if conversation else "",
            sent_at=timezone.now(),
        )

    @staticmethod
    def _participant(account: AccountRef, reply: OutboundReply) -> str:
        participant = reply.recipient_id
        if not participant and not reply.private_reply_to_public:
            participant = _other_participant(reply.in_reply_to, account.external_id)
        if not participant:
            raise ConnectorError(
                "An X direct message needs the customer's user id.", permanent=True
            )
        return participant

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        """Find a reply sent before a crash: X has no idempotency key.

        Public: the account's posts of the last RECONCILE_WINDOW
        (`GET /2/users/:id/tweets` with `start_time`) replying to `in_reply_to` with
        the same text. Private: the DM thread's events (newest first) back to the
        window start, sent by the account with the same text. None when the whole
        window was read without a match; ConnectorError when it could not be.
        """
        since = timezone.now() - RECONCILE_WINDOW
        if reply.visibility == "private":
            return self._find_dm(account, reply, since)
        params = {
            "max_results": str(PAGE_SIZE),
            "start_time": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "exclude": "retweets",
            "tweet.fields": "created_at,referenced_tweets,entities,note_tweet",
        }
        wanted = _normalized(reply.text)
        path = f"/2/users/{account.external_id}/tweets"
        for post in self._pages(account, path, params):
            replied = {
                _str(r.get("id"))
                for r in _dicts(post.get("referenced_tweets"))
                if r.get("type") == "replied_to"
            }
            text = _str(_obj(post.get("note_tweet")).get("text") or post.get("text"))
            entities = _obj(post.get("entities"))
            if reply.in_reply_to in replied and _normalized(text, entities) == wanted:
                post_id = _str(post.get("id"))
                return DeliveryResult(
                    external_id=post_id,
                    url=_post_url(account.handle, post_id),
                    sent_at=_iso(post.get("created_at")),
                )
        return None

    def _find_dm(
        self, account: AccountRef, reply: OutboundReply, since: datetime
    ) -> DeliveryResult | None:
        participant = self._participant(account, reply)
        params = {
            "max_results": str(PAGE_SIZE),
            "event_types": "MessageCreate",
            "dm_event.fields": DM_EVENT_FIELDS,
        }
        path = f"/2/dm_conversations/with/{participant}/dm_events"
        wanted = _normalized(reply.text)
        for event in self._pages(account, path, params):
            created = _iso(event.get("created_at"))
            if created < since:
                return None
            text = _normalized(_str(event.get("text")), _obj(event.get("entities")))
            if _str(event.get("sender_id")) == account.external_id and text == wanted:
                conversation = _str(event.get("dm_conversation_id"))
                return DeliveryResult(
                    external_id=_str(event.get("id")),
                    url=f"https://x.com/messages/{conversation}"
                    if conversation
                    else "",
                    sent_at=created,
                )
        return None

    def _pages(
        self, account: AccountRef, path: str, params: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        """Each item of a paginated lookup, fetched lazily; ConnectorError when the
        caller reads past RECONCILE_PAGES pages."""
        token = ""
        for _page in range(RECONCILE_PAGES):
            query = {**params, "pagination_token": token} if token else params
            page = self._get(account, path, query)
            yield from _dicts(page.get("data"))
            token = _str(_obj(page.get("meta")).get("next_token"))
            if not token:
                return
        raise ConnectorError(
            "Too many recent X posts to check whether this reply was already sent; "
            "will check again later."
        )

    # OAuth 2.0 with PKCE

    def authorize_url(
        self, app: AppSecrets, *, redirect_uri: str, state: str, code_challenge: str
    ) -> str:
        """X's consent page (`/i/oauth2/authorize`), PKCE S256, the helpdesk scopes.

        On `AppSecrets.base_url`'s host when set (tests), else x.com.
        """
        query = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        host = AUTHORIZE_BASE
        if app.base_url:
            parts = urlsplit(app.base_url)
            host = f"{parts.scheme}://{parts.netloc}"
        return f"{host}/i/oauth2/authorize?{urlencode(query, quote_via=quote)}"

    def exchange_code(
        self, app: AppSecrets, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        """Trade the code (`POST /2/oauth2/token`, Basic auth when the app has a
        secret) and read the account (`GET /2/users/me`). ConnectorError on refusal."""
        tokens = self._token(
            app,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
                "client_id": app.client_id,
            },
        )
        access = _str(tokens.get("access_token"))
        response = request(
            "GET",
            f"{self._base(app.base_url)}/2/users/me",
            params={"user.fields": USER_FIELDS},
            headers={"Authorization": f"Bearer {access}"},
        )
        me = _obj(_obj(response.json()).get("data"))
        return self._token_set(
            tokens,
            refresh="",
            account_id=_str(me.get("id")),
            handle=_str(me.get("username")),
            display_name=_str(me.get("name")),
        )

    def refresh(self, app: AppSecrets, account: AccountRef) -> TokenSet:
        """Trade the refresh token for new tokens (X rotates the refresh token).

        ConnectorError(auth=True, permanent=True) when there is no refresh token or
        X refuses it (400/401): the account must be connected again.
        """
        refresh = _str(account.credentials.get("refresh_token"))
        if not refresh:
            raise ConnectorError(
                "The X account has no refresh token; connect it again.",
                auth=True,
                permanent=True,
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": app.client_id,
        }
        try:
            tokens = self._token(app, form)
        except ConnectorError as error:
            if error.status != 400:
                raise
            raise ConnectorError(
                f"X refused to refresh the token ({error.message}); connect the "
                "account again.",
                auth=True,
                permanent=True,
                status=error.status,
            ) from error
        return self._token_set(
            tokens,
            refresh=refresh,
            account_id=account.external_id,
            handle=account.handle,
        )

    def revoke(self, app: AppSecrets, account: AccountRef) -> None:
        """Revoke the refresh token, then the access token (`POST /2/oauth2/revoke`,
        Basic auth when the app has a secret). X answers `{"revoked": true}`.

        Raises ConnectorError when X refuses or cannot be reached; a token X no
        longer knows counts as revoked (X answers 200 for it).
        """
        tokens = [
            (_str(account.credentials.get(kind)), hint)
            for kind, hint in (
                ("refresh_token", "refresh_token"),
                ("access_token", "access_token"),
            )
        ]
        present = [(token, hint) for token, hint in tokens if token]
        if not present:
            raise ConnectorError(
                "The X account has no token to revoke.", permanent=True
            )
        for token, hint in present:
            form = {"token": token, "token_type_hint": hint, "client_id": app.client_id}
            kwargs: dict[str, Any] = {"data": form}
            if app.client_secret:
                kwargs["auth"] = (app.client_id, app.client_secret)
            request("POST", f"{self._base(app.base_url)}/2/oauth2/revoke", **kwargs)

    def _token(self, app: AppSecrets, form: dict[str, str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"data": form}
        if app.client_secret:
            kwargs["auth"] = (app.client_id, app.client_secret)
        response = request(
            "POST", f"{self._base(app.base_url)}/2/oauth2/token", **kwargs
        )
        tokens = _obj(response.json())
        if not tokens.get("access_token"):
            raise ConnectorError("X answered without an access token.", permanent=True)
        return tokens

    @staticmethod
    def _token_set(
        tokens: dict[str, Any],
        *,
        refresh: str,
        account_id: str,
        handle: str,
        display_name: str = "",
    ) -> TokenSet:
        lifetime = _int(tokens.get("expires_in"))
        return TokenSet(
            access_token=_str(tokens.get("access_token")),
            refresh_token=_str(tokens.get("refresh_token")) or refresh,
            expires_at=timezone.now() + timedelta(seconds=lifetime)
            if lifetime
            else None,
            account_external_id=account_id,
            handle=handle,
            display_name=display_name,
            extra={"scope": _str(tokens.get("scope"))},
        )

    # HTTP

    @staticmethod
    def _base(base_url: str) -> str:
        return (base_url or API_BASE).rstrip("/")

    @staticmethod
    def _headers(account: AccountRef) -> dict[str, str]:
        access = _str(account.credentials.get("access_token"))
        if not access:
            raise ConnectorError(
                "The X account has no access token; connect it again.",
                auth=True,
                permanent=True,
            )
        return {"Authorization": f"Bearer {access}"}

    def _get(
        self, account: AccountRef, path: str, params: dict[str, str]
    ) -> dict[str, Any]:
        url = self._base(account.base_url) + path
        response = request("GET", url, params=params, headers=self._headers(account))
        return _obj(response.json())

    def _post(
        self, account: AccountRef, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        url = self._base(account.base_url) + path
        response = request("POST", url, json=body, headers=self._headers(account))
        return _obj(response.json())
