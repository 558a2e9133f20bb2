"""Reddit: an OAuth2 web app, inbox polling, comments and private messages.

Reddit has no webhooks, so inbound is polled: `GET /message/inbox` (comment replies,
username mentions and private messages) plus `GET /message/mentions`. Comments cannot
be searched by keyword through the API; `search_public` (through
`search_submissions`) searches posts (t3) instead, for listening rules, with its own
cursor.

Identities: a Redditor's username is immutable and is what `/api/compose` takes, so
authors are identified by username (not the `t2_` fullname). The connected account's
`external_id` is its `t2_` fullname and its handle the username.

Rate limit: Reddit reports `X-Ratelimit-Remaining` and `X-Ratelimit-Reset` (seconds
until the window ends) on every answer. An operation that needs another request after
the budget reached 0 stops with a transient ConnectorError carrying `retry_after`
instead of earning a 429. A 429 itself is mapped by social.http.

Hosts: www.reddit.com for OAuth, oauth.reddit.com for the API. `AppSecrets.base_url`
replaces the first and `AccountRef.base_url` the second (tests point both at a fake).
social.http sends the descriptive User-Agent Reddit requires.
"""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

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
    search_tokens,
)
from social.connectors.text import malformed_as_value_error, parsed_each

logger = logging.getLogger(__name__)

AUTH_HOST = "https://www.reddit.com"
API_HOST = "https://oauth.reddit.com"
WEB_HOST = "https://www.reddit.com"
SCOPES = "identity read privatemessages submit history"
PAGE_SIZE = 100
# Pages per listing and poll; a backlog beyond this is picked up by later polls.
MAX_PAGES = 5
LOOKUP_SIZE = 25
SEARCH_QUERY_LIMIT = 512  # characters of a search `q`
_WORD = re.compile(r"\w+")
# Form fields shared by every write: JSON envelopes instead of jQuery callbacks.
JSON_API = {"api_type": "json"}
# raw_json=1: bodies come back as written, not with &amp;/&lt;/&gt; escaped.
RAW = {"raw_json": "1"}

Thing = dict[str, Any]


@dataclass(frozen=True)
class PollCursor:
    """Where polling stopped: the newest `created_utc` returned and the fullnames
    returned at that second (items sharing it are not returned twice).

    Serialised as "<seconds>:<fullname>,<fullname>"; "" means never polled.
    """

    newest: float = 0.0
    seen: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: str) -> "PollCursor":
        if not raw:
            return cls()
        seconds, _, names = raw.partition(":")
        return cls(float(seconds), frozenset(filter(None, names.split(","))))

    def __str__(self) -> str:
        if not self.newest:
            return ""
        return f"{self.newest:.0f}:{','.join(sorted(self.seen))}"

    def is_new(self, thing: Thing) -> bool:
        created = float(thing["created_utc"])
        if created == self.newest:
            return thing["name"] not in self.seen
        return created > self.newest

    def advanced(self, things: list[Thing]) -> "PollCursor":
        """The cursor after returning `things` (all newer than this one)."""
        if not things:
            return self
        newest = max(float(thing["created_utc"]) for thing in things)
        names = {thing["name"] for thing in things if thing["created_utc"] == newest}
        if newest == self.newest:
            names |= self.seen
        return PollCursor(newest, frozenset(names))


class _Api:
    """The requests of one operation for one account.

    Before each request after the first it checks the previous answer's rate-limit
    budget, so an exhausted window stops the operation with a retry_after rather
    than a 429. Holds no state beyond the operation.
    """

    def __init__(self, account: AccountRef) -> None:
        token = account.credentials.get("access_token")
        if not token:
            raise ConnectorError(
                "The Reddit account has no access token.", permanent=True, auth=True
            )
        self.base = (account.base_url or API_HOST).rstrip("/")
        self.headers = {"Authorization": f"bearer {token}"}
        self.last: httpx.Response | None = None

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.last is not None:
            raise_if_exhausted(self.last)
        self.last = http.request(
            method, self.base + path, headers=self.headers, **kwargs
        )
        return self.last

    def listing(self, path: str, **params: str) -> tuple[list[Thing], str]:
        """One page of a Listing: the children's data (with their kind) and `after`."""
        answer = self.call("GET", path, params={**RAW, **params}).json()
        try:
            with malformed_as_value_error("the Reddit listing"):
                data = answer["data"]
                children = list(data["children"])
                after = str(data.get("after") or "")
        except ValueError as exc:
            raise ConnectorError(str(exc)) from exc
        return parsed_each("Reddit listing child", _thing, children), after


def raise_if_exhausted(response: httpx.Response) -> None:
    """Raise a transient ConnectorError when the window's request budget is spent."""
    remaining = response.headers.get("x-ratelimit-remaining")
    try:
        exhausted = remaining is not None and float(remaining) < 1
        reset = float(response.headers.get("x-ratelimit-reset") or 0)
    except ValueError:
        return
    if exhausted:
        raise ConnectorError(
            "Reddit's rate limit for this window is used up.",
            retry_after=reset,
            status=429,
        )


@register_connector
class RedditConnector(Connector):
    """Reddit's inbox, comments and private messages for one brand account."""

    platform: ClassVar[str] = "reddit"
    # Public comments and PMs; a PM can be sent to anyone (start_private), but it is
    # never linked to the comment it follows up (no private_reply_to_public).
    capabilities: ClassVar[Capabilities] = Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        max_length=10000,
        polling=True,
    )
    keyword_search: ClassVar[bool] = True
    engagement_batch: ClassVar[int] = 100
    # About 100 queries a minute per client (platforms.md section 8.4), shared with
    # polling and replies: engagement reads take 20.
    engagement_limit: ClassVar[SendLimit | None] = SendLimit(20, 60, "engagement")

    def read_engagement(
        self, account: AccountRef, post_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """`GET /api/info?id=<fullnames, up to 100>`: a Listing of the posts (t3:
        `score`, `num_comments`, `num_crossposts`) and comments (t1: `score`).
        The score (upvotes less downvotes, 0 at least) counts as likes. Deleted
        or unknown things are not in the listing. Raises ConnectorError, also
        before the call when the rate-limit window is spent."""
        api = _Api(account)
        answer = api.call(
            "GET", "/api/info", params={**RAW, "id": ",".join(post_ids)}
        ).json()
        data = answer.get("data") if isinstance(answer, dict) else None
        children = data.get("children") if isinstance(data, dict) else None
        found: dict[str, Engagement] = {}
        for child in children if isinstance(children, list) else []:
            try:
                thing = child["data"]
                found[str(thing["name"])] = engagement_from(
                    thing,
                    reposts="num_crossposts",
                    likes="score",
                    replies="num_comments",
                )
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning("Reddit info: malformed thing left out: %r", exc)
        return found

    def authorize_url(
        self, app: AppSecrets, *, redirect_uri: str, state: str, code_challenge: str
    ) -> str:
        """Reddit's consent page for a permanent (refreshable) grant.

        Reddit has no PKCE: `code_challenge` is accepted for the common interface and
        ignored; the client secret (a web app) protects the code exchange instead.
        """
        query = urlencode(
            {
                "client_id": app.client_id,
                "response_type": "code",
                "state": state,
                "redirect_uri": redirect_uri,
                "duration": "permanent",
                "scope": SCOPES,
            }
        )
        return f"{_auth_host(app)}/api/v1/authorize?{query}"

    def exchange_code(
        self, app: AppSecrets, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        """Trade the code for tokens (Basic client auth), then read `/api/v1/me`.

        `code_verifier` is ignored (no PKCE on Reddit). Raises ConnectorError (auth)
        when Reddit refuses the code or the client credentials.
        """
        token = _token_request(
            app,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
            },
        )
        me = http.request(
            "GET",
            f"{(app.base_url or API_HOST).rstrip('/')}/api/v1/me",
            headers={"Authorization": f"bearer {token['access_token']}"},
        ).json()
        return _token_set(
            token, external_id=f"t2_{me['id']}", handle=me["name"], previous=""
        )

    def refresh(self, app: AppSecrets, account: AccountRef) -> TokenSet:
        """A new access token from the account's refresh token.

        Reddit may or may not rotate the refresh token; the old one is kept when the
        answer has none. Raises ConnectorError (auth) when the grant was revoked.
        """
        previous = str(account.credentials.get("refresh_token") or "")
        token = _token_request(
            app, {"grant_type": "refresh_token", "refresh_token": previous}
        )
        return _token_set(
            token,
            external_id=account.external_id,
            handle=account.handle,
            previous=previous,
        )

    def revoke(self, app: AppSecrets, account: AccountRef) -> None:
        """Revoke the grant (`POST /api/v1/revoke_token`, Basic client auth).

        Revoking the refresh token ends the whole grant, access tokens included;
        without one the access token is revoked. Reddit answers 204. Raises
        ConnectorError when Reddit refuses or cannot be reached.
        """
        refresh = str(account.credentials.get("refresh_token") or "")
        access = str(account.credentials.get("access_token") or "")
        if not (refresh or access):
            raise ConnectorError(
                "The Reddit account has no token to revoke.", permanent=True
            )
        form = (
            {"token": refresh, "token_type_hint": "refresh_token"}
            if refresh
            else {"token": access, "token_type_hint": "access_token"}
        )
        http.request(
            "POST",
            f"{_auth_host(app)}/api/v1/revoke_token",
            data=form,
            auth=(app.client_id, app.client_secret),
        )

    def fetch_since(self, account: AccountRef, cursor: str) -> FetchResult:
        """Inbox and mentions newer than `cursor`, oldest first, and the next cursor.

        Both listings are read newest first, page by page (`after`), until a page
        reaches what the cursor already covers; the first poll reads one page of each.
        Items are deduplicated by fullname (mentions also appear in the inbox). The
        account's own messages and messages without an author (subreddit or system
        mail) are skipped. Raises ConnectorError; the cursor is then not advanced.
        """
        since = PollCursor.parse(cursor)
        api = _Api(account)
        found: dict[str, Thing] = {}
        for path in ("/message/inbox", "/message/mentions"):
            for thing in _new_things(api, path, since):
                found.setdefault(thing["name"], thing)
        fresh = sorted(
            found.values(),
            key=lambda thing: (float(thing["created_utc"]), thing["name"]),
        )
        items = parsed_each(
            "Reddit message",
            parse_message,
            (
                thing
                for thing in fresh
                if thing.get("author")
                and str(thing["author"]).lower() != account.handle.lower()
            ),
        )
        return FetchResult(items=items, cursor=str(since.advanced(fresh)))

    def search_submissions(
        self, account: AccountRef, query: str, cursor: str = ""
    ) -> FetchResult:
        """Posts (t3) matching `query`, site-wide and newest first, newer than `cursor`.

        Reddit's API has no keyword search over comments; listening rules on Reddit
        match posts only. Returns items oldest first; one page per call.
        """
        since = PollCursor.parse(cursor)
        things, _ = _Api(account).listing(
            "/search",
            q=query,
            sort="new",
            type="link",
            limit=str(PAGE_SIZE),
        )
        fresh = sorted(
            (thing for thing in things if since.is_new(thing)),
            key=lambda thing: (float(thing["created_utc"]), thing["name"]),
        )
        return FetchResult(
            items=parsed_each("Reddit post", parse_submission, fresh),
            cursor=str(since.advanced(fresh)),
        )

    def search_public(
        self, account: AccountRef, terms: Sequence[str], cursor: str
    ) -> FetchResult:
        """Posts (t3) containing any of `terms`, newer than `cursor`, oldest first.

        One `search_submissions` call with `search_query(terms)` (terms that do not
        fit its 512 characters are left out and logged; no request when none is
        left). The account's own posts and posts whose author is gone are skipped
        (the cursor still moves past them). Raises ConnectorError.
        """
        query, left_out = search_query(terms)
        if left_out:
            logger.warning(
                "Reddit search for u/%s leaves out %s term(s): %s",
                account.handle,
                len(left_out),
                left_out,
            )
        if not query:
            return FetchResult(items=[], cursor=cursor)
        found = self.search_submissions(account, query, cursor)
        skipped = {account.handle.lower(), "", "[deleted]"}
        items = [
            item for item in found.items if item.author.handle.lower() not in skipped
        ]
        return FetchResult(items=items, cursor=found.cursor)

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        """Post a public comment, answer a PM thread, or start a PM.

        Public: `POST /api/comment` on the answered comment or post. Private in an
        existing thread (`in_reply_to` a t4): `POST /api/comment` on the thread, which
        keeps Reddit's PM thread together. Otherwise `POST /api/compose` to the
        customer. Raises ConnectorError: permanent for envelope errors (deleted
        target, unknown user, archived thread), transient for Reddit's RATELIMIT.
        """
        api = _Api(account)
        threaded = reply.in_reply_to.startswith("t4_")
        if reply.visibility == "public" or (
            threaded and not reply.private_reply_to_public
        ):
            if not reply.in_reply_to:
                raise ConnectorError(
                    "A Reddit reply needs the comment or post it answers.",
                    permanent=True,
                )
            return _comment(api, reply.in_reply_to, reply.text)
        return _compose(api, account, reply)

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        """The reply when Reddit has it; None when it never arrived.

        Public replies: the account's recent comments (`GET /user/<handle>/comments`)
        with the same parent and body. Private: recent sent messages
        (`GET /message/sent`) in the same thread, or to the same user, with the same
        body. Raises ConnectorError when Reddit cannot be asked.
        """
        api = _Api(account)
        body = reply.text.strip()
        if reply.visibility == "public":
            things, _ = api.listing(
                f"/user/{account.handle}/comments", sort="new", limit=str(LOOKUP_SIZE)
            )
            for thing in things:
                if (
                    thing.get("parent_id") == reply.in_reply_to
                    and str(thing.get("body", "")).strip() == body
                ):
                    return _delivery(thing)
            return None
        return _find_sent(api, reply)


def search_query(terms: Sequence[str]) -> tuple[str, list[str]]:
    """The `q` of a keyword search for listening terms, and the terms left out.

    `t1 OR t2 OR ...` in Reddit's (Lucene) syntax: phrases stay quoted, a term of
    several tokens is `(a AND b)`. Reddit has no hashtags or @mentions, so `#acme`
    and `@acme` search the name (quoted when it has dots or dashes). Terms are
    taken in order while `q` stays within SEARCH_QUERY_LIMIT characters; one that
    would not fit is left out and later, shorter ones are still tried. "" when no
    term is left.
    """
    parts: list[str] = []
    left_out: list[str] = []
    for term in terms:
        tokens = [_search_token(token) for token in search_tokens(term)]
        joined = " AND ".join(tokens)
        rendered = f"({joined})" if len(tokens) > 1 else joined
        if rendered in parts:
            continue  # `#acme` and `acme` are the same search here
        if not rendered or len(" OR ".join([*parts, rendered])) > SEARCH_QUERY_LIMIT:
            left_out.append(term)
            continue
        parts.append(rendered)
    return " OR ".join(parts), left_out


def _search_token(token: str) -> str:
    if token[0] not in "#@":
        return token
    name = token[1:]
    return name if _WORD.fullmatch(name) else f'"{name}"'


def _thing(child: Any) -> Thing:
    """A listing child's `data` with its `kind`, when the cursor can place it (a
    fullname and a time); ValueError else."""
    thing: Thing = {**child["data"], "kind": child["kind"]}
    if not isinstance(thing.get("name"), str):
        raise ValueError("the child has no fullname")
    _utc(thing["created_utc"])
    return thing


def parse_message(thing: Thing) -> InboundItem:
    """An inbox item: t1 (comment reply or mention, public) or t4 (PM, private).

    `thing` is a listing child's `data` with the child's `kind` added. ValueError
    when it is malformed.
    """
    with malformed_as_value_error("the Reddit message"):
        return _message_item(thing)


def _message_item(thing: Thing) -> InboundItem:
    author = str(thing["author"])
    common: dict[str, Any] = {
        "platform": "reddit",
        "external_id": thing["name"],
        "author": Author(
            external_id=author,
            handle=author,
            profile_url=f"{WEB_HOST}/user/{author}",
        ),
        "text": str(thing.get("body") or ""),
        "created_at": _utc(thing["created_utc"]),
        "in_reply_to": thing.get("parent_id") or "",
        "raw": thing,
    }
    if thing["kind"] == "t4":
        return InboundItem(
            **common,
            visibility="private",
            kind="direct_message",
            thread_ref=thing.get("first_message_name") or thing["name"],
            url=f"{WEB_HOST}/message/messages/{thing['id']}",
        )
    mention = thing.get("type") == "username_mention"
    return InboundItem(
        **common,
        visibility="public",
        kind="mention" if mention else "comment",
        thread_ref=_link_id(thing),
        mentions_account=mention,
        url=f"{WEB_HOST}{thing['context']}" if thing.get("context") else "",
    )


def parse_submission(thing: Thing) -> InboundItem:
    """A post (t3) from search: public, its own thread. ValueError when malformed."""
    with malformed_as_value_error("the Reddit post"):
        return _submission_item(thing)


def _submission_item(thing: Thing) -> InboundItem:
    author = str(thing.get("author") or "")
    text = "\n\n".join(
        part for part in (thing.get("title"), thing.get("selftext")) if part
    )
    return InboundItem(
        platform="reddit",
        external_id=thing["name"],
        author=Author(
            external_id=author, handle=author, profile_url=f"{WEB_HOST}/user/{author}"
        ),
        text=text,
        created_at=_utc(thing["created_utc"]),
        visibility="public",
        kind="post",
        thread_ref=thing["name"],
        url=f"{WEB_HOST}{thing['permalink']}" if thing.get("permalink") else "",
        raw=thing,
    )


def _new_things(api: _Api, path: str, since: PollCursor) -> list[Thing]:
    """The listing's items newer than `since`, paging back until it is reached."""
    fresh: list[Thing] = []
    after = ""
    for _ in range(MAX_PAGES):
        params = {"limit": str(PAGE_SIZE), **({"after": after} if after else {})}
        things, after = api.listing(path, **params)
        page_new = [thing for thing in things if since.is_new(thing)]
        fresh.extend(page_new)
        if not since.newest or not after or len(page_new) < len(things):
            break
    return fresh


def _link_id(thing: Thing) -> str:
    """The post a comment belongs to: `link_id`, or parsed from `context`.

    Inbox items carry `context` ("/r/<sub>/comments/<post>/<slug>/<id>/?context=3")
    but, unlike comment listings, usually no `link_id`.
    """
    if thing.get("link_id"):
        return str(thing["link_id"])
    parts = str(thing.get("context") or "").split("/")
    if "comments" in parts and parts.index("comments") + 1 < len(parts):
        return f"t3_{parts[parts.index('comments') + 1]}"
    return str(thing.get("parent_id") or thing["name"])


def _comment(api: _Api, thing_id: str, text: str) -> DeliveryResult:
    response = api.call(
        "POST", "/api/comment", data={**JSON_API, "thing_id": thing_id, "text": text}
    )
    things = _envelope(response)["data"]["things"]
    return _delivery({**things[0]["data"], "kind": things[0]["kind"]})


def _compose(api: _Api, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
    """Start a PM, then find it in the sent box (compose does not return it).

    After Reddit accepted the message nothing may raise, or a retry would send it
    twice: when the sent box cannot be read the delivery gets a `compose:` id.
    """
    if not reply.recipient_id:
        raise ConnectorError(
            "A Reddit private message needs the recipient's username.", permanent=True
        )
    subject = {
        "t1": "Re: your comment",
        "t3": "Re: your post",
    }.get(reply.in_reply_to[:2], f"Message from {account.handle}")
    form = {
        **JSON_API,
        "to": reply.recipient_id,
        "subject": subject,
        "text": reply.text,
    }
    _envelope(api.call("POST", "/api/compose", data=form))
    try:
        found = _find_sent(api, reply)
    except ConnectorError:
        found = None
    return found or DeliveryResult(
        external_id=f"compose:{reply.client_ref}", sent_at=timezone.now()
    )


def _find_sent(api: _Api, reply: OutboundReply) -> DeliveryResult | None:
    things, _ = api.listing("/message/sent", limit=str(LOOKUP_SIZE))
    threaded = reply.in_reply_to.startswith("t4_") and not reply.private_reply_to_public
    for thing in things:
        if str(thing.get("body", "")).strip() != reply.text.strip():
            continue
        if threaded and reply.in_reply_to in (
            thing.get("first_message_name"),
            thing.get("parent_id"),
        ):
            return _delivery(thing)
        if (
            not threaded
            and str(thing.get("dest", "")).lower() == reply.recipient_id.lower()
        ):
            return _delivery(thing)
    return None


def _envelope(response: httpx.Response) -> dict[str, Any]:
    """The `json` part of a write's answer; its `errors` become ConnectorErrors."""
    envelope: dict[str, Any] = response.json().get("json", {})
    errors = envelope.get("errors") or []
    if not errors:
        return envelope
    code, message, field = [*errors[0], "", "", ""][:3]
    text = f"{code}: {message}" + (f" ({field})" if field else "")
    if code == "RATELIMIT":
        # "You are doing that too much": Reddit says how long to wait, in seconds.
        wait = envelope.get("ratelimit")
        raise ConnectorError(
            text, retry_after=float(wait) if wait is not None else None, status=429
        )
    raise ConnectorError(text, permanent=True, status=response.status_code)


def _delivery(thing: Thing) -> DeliveryResult:
    if thing.get("permalink"):
        url = f"{WEB_HOST}{thing['permalink']}"
    elif thing.get("kind") == "t4" or str(thing.get("name", "")).startswith("t4_"):
        url = f"{WEB_HOST}/message/messages/{thing['id']}"
    else:
        url = ""
    sent_at = _utc(thing["created_utc"]) if thing.get("created_utc") else None
    return DeliveryResult(external_id=thing["name"], url=url, sent_at=sent_at)


def _token_request(app: AppSecrets, form: dict[str, str]) -> dict[str, Any]:
    response = http.request(
        "POST",
        f"{_auth_host(app)}/api/v1/access_token",
        data=form,
        auth=(app.client_id, app.client_secret),
    )
    token: dict[str, Any] = response.json()
    if "error" in token:
        # Reddit answers a bad or used code (and a revoked refresh token) with 200.
        raise ConnectorError(
            f"Reddit refused the grant: {token['error']}",
            permanent=True,
            auth=True,
            status=response.status_code,
        )
    return token


def _token_set(
    token: dict[str, Any], *, external_id: str, handle: str, previous: str
) -> TokenSet:
    expires_in = token.get("expires_in")
    return TokenSet(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token") or previous,
        expires_at=(
            timezone.now() + timedelta(seconds=float(expires_in))
            if expires_in
            else None
        ),
        account_external_id=external_id,
        handle=handle,
        extra={"scope": token.get("scope", "")},
    )


def _auth_host(app: AppSecrets) -> str:
    return (app.base_url or AUTH_HOST).rstrip("/")


def _utc(seconds: float | int | str) -> datetime:
    if isinstance(seconds, bool) or not isinstance(seconds, float | int | str):
        raise TypeError(f"not a time: {type(seconds).__name__}")
    return datetime.fromtimestamp(float(seconds), tz=UTC)
