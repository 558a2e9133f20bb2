"""The one interface every platform connector implements, and its plain data types.

Connectors are pure adapters: they turn platform payloads into `InboundItem`s and
send replies through `social.http`. They never touch the database and never import
helpdesk code; callers pass them an `AccountRef` with what they need.
"""

import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar

from social.connectors import text as _text

# `Connector.webhook_event_id`'s default payload: the body is not read yet (None
# is JSON's null).
UNPARSED: Any = object()


def delivery_object(body: bytes, payload: Any = UNPARSED) -> dict[str, Any]:
    """A webhook delivery's `body` as a JSON object (`payload` when the caller
    read it already); ValueError when it is not JSON or not an object."""
    if payload is UNPARSED:
        try:
            payload = _text.load_json(body)
        except ValueError as exc:
            raise ValueError(f"Not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError("The delivery is not a JSON object.")
    return payload


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` keyed with `secret`, as `hmac.digest` gives it.

    The key's state is prepared once per secret and copied for each message: the
    webhook receivers verify every delivery with one of a few secrets, and
    preparing the key (OpenSSL fetches the digest and pads the key) was about a
    third of an HMAC of a 1 KB body."""
    mac = _keyed_sha256(secret).copy()
    mac.update(message)
    return mac.digest()


@lru_cache(maxsize=32)
def _keyed_sha256(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod="sha256")


class ConnectorError(Exception):
    """A platform call failed.

    `permanent` errors will fail again on retry (bad request, deleted post, policy
    refusal); others are retried, after `retry_after` seconds when the platform said.
    `auth` marks credentials that need the account to be re-authorized.
    When the platform answered, `status`, `headers` (case-insensitive when they come
    from social.http) and the raw `body` are its answer's, so a connector refines
    the mapping from them (an error code in the body, a rate-limit reset header).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        auth: bool = False,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.auth = auth
        self.status = status
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.body = body

    def json(self) -> Any:
        """The answer's body as JSON; None when there is none or it is not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class Capabilities:
    """What a platform allows; the reply rules and the composer read these."""

    public_reply: bool = True
    private_message: bool = True
    private_reply_to_public: bool = False
    start_private: bool = False
    private_reply_window: timedelta | None = None
    max_length: int = 2000
    public_reply_needs_mention: bool = False
    webhooks: bool = False
    polling: bool = False
    streaming: bool = False


@dataclass(frozen=True)
class Author:
    external_id: str
    handle: str = ""
    display_name: str = ""
    followers: int = 0
    profile_url: str = ""

    def __post_init__(self) -> None:
        """Customer text under social.connectors.text's rule, fitted to its columns;
        ValueError when a field has the wrong type or the id cannot be stored."""
        _clean(self, ("external_id", "handle", "display_name", "profile_url"))
        _fit(self, "handle", _text.HANDLE_LENGTH)
        _fit(self, "display_name", _text.NAME_LENGTH)
        _drop_if_longer(self, "profile_url", _text.URL_LENGTH)
        _check_id(self, "external_id")
        followers = self.followers
        if type(followers) is not int:
            raise ValueError(f"author followers is not a number: {followers!r:.40}")
        if not 0 <= followers <= _text.MAX_FOLLOWERS:
            clamped = min(max(followers, 0), _text.MAX_FOLLOWERS)
            object.__setattr__(self, "followers", clamped)


@dataclass(frozen=True)
class InboundItem:
    """One post, comment, review or private message, as the platform gave it."""

    platform: str
    external_id: str
    author: Author
    text: str
    created_at: datetime
    visibility: str  # "public" | "private"
    kind: str = "post"  # post | comment | mention | review | direct_message
    thread_ref: str = ""  # root post id (public) or conversation id (private)
    in_reply_to: str = ""
    mentions_account: bool = False
    url: str = ""
    language: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    # Set when the webhook carried only ids (Instagram mentions): ingest calls the
    # connector's `hydrate` for the content before recording it.
    needs_hydration: bool = False

    def __post_init__(self) -> None:
        """Customer text under social.connectors.text's rule, fitted to its columns;
        ValueError when a field has the wrong type or an id cannot be stored."""
        _clean(self, _ITEM_TEXT)
        for name in ("external_id", "thread_ref", "in_reply_to"):
            _check_id(self, name)
        _drop_if_longer(self, "url", _text.URL_LENGTH)
        _fit(self, "language", _text.LANGUAGE_LENGTH)
        if not isinstance(self.author, Author):
            raise ValueError("the item has no author")
        if not isinstance(self.created_at, datetime):
            raise ValueError(f"created_at is not a time: {self.created_at!r:.40}")
        at = self.created_at
        try:  # a platform's naive time is UTC
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError(f"created_at is out of range: {exc}") from exc
        if at is not self.created_at:
            object.__setattr__(self, "created_at", at)


_ITEM_TEXT = (
    "platform",
    "external_id",
    "text",
    "visibility",
    "kind",
    "thread_ref",
    "in_reply_to",
    "url",
    "language",
)


def _clean(item: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(item, name)
        if not isinstance(value, str):
            raise ValueError(f"{name} is not text: {value!r:.40}")
        clean = _text.storable(value)
        if clean is not value:
            object.__setattr__(item, name, clean)


def _fit(item: object, name: str, length: int) -> None:
    value: str = getattr(item, name)
    if len(value) > length:
        object.__setattr__(item, name, value[:length])


def _drop_if_longer(item: object, name: str, length: int) -> None:
    """A link too long to store, or not a web link (`javascript:`, `data:`), is
    left out: pages put it in an href."""
    value: str = getattr(item, name)
    if len(value) > length or not _text.is_web_link(value):
        object.__setattr__(item, name, "")


def _check_id(item: object, name: str) -> None:
    value: str = getattr(item, name)
    if len(value) > _text.ID_LENGTH:
        raise ValueError(f"{name} is longer than {_text.ID_LENGTH} characters")


@dataclass(frozen=True)
class AccountRef:
    """What a connector needs to act for one connected account."""

    platform: str
    external_id: str
    handle: str
    credentials: dict[str, Any]
    base_url: str = ""


@dataclass(frozen=True)
class OutboundReply:
    """A reply to send. `client_ref` is stable across retries (idempotency key)."""

    client_ref: str
    text: str
    visibility: str  # "public" | "private"
    in_reply_to: str = ""  # the platform id being answered (public) or thread (private)
    recipient_id: str = ""  # the customer's platform id, for private messages
    private_reply_to_public: bool = False


@dataclass(frozen=True)
class SendLimit:
    """A platform's limit on one account's sends: `requests` per `per_seconds`,
    counted in the named `bucket` (X counts posts and direct messages apart)."""

    requests: int
    per_seconds: int
    bucket: str = "send"


@dataclass(frozen=True)
class Engagement:
    """How far one public post has travelled, as its platform counts it.

    `reposts`: retweets, reblogs, shares, crossposts; `likes`: likes, favourites,
    reactions, a Reddit score; `replies`: replies or comments; `quotes`: quote
    posts. A count the platform does not give stays 0; a negative one (a Reddit
    score below zero) counts as 0.
    """

    reposts: int = 0
    likes: int = 0
    replies: int = 0
    quotes: int = 0

    def __post_init__(self) -> None:
        """Counts are whole numbers from 0 to MAX_FOLLOWERS; ValueError else."""
        for name in ("reposts", "likes", "replies", "quotes"):
            value = getattr(self, name)
            if type(value) is not int:
                raise ValueError(f"{name} is not a number: {value!r:.40}")
            clamped = min(max(value, 0), _text.MAX_FOLLOWERS)
            if clamped != value:
                object.__setattr__(self, name, clamped)

    @property
    def total(self) -> int:
        return self.reposts + self.likes + self.replies + self.quotes


def engagement_from(data: object, **fields: str) -> Engagement:
    """An Engagement read from one entry of a platform's answer: `fields` maps
    each count (reposts, likes, replies, quotes) to the entry's key for it, e.g.
    `engagement_from(status, reposts="reblogs_count", likes="favourites_count")`.
    An absent or null key counts 0; ValueError when the entry is not an object or
    a count is not a whole number (numeric strings, as some platforms send, are)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"engagement entry is not an object: {data!r:.40}")
    counts: dict[str, int] = {}
    for name, key in fields.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 20:
            value = int(value)
        if type(value) is not int:
            raise ValueError(f"{key} is not a count: {value!r:.40}")
        counts[name] = value
    return Engagement(**counts)


@dataclass(frozen=True)
class DeliveryResult:
    external_id: str
    url: str = ""
    sent_at: datetime | None = None


@dataclass(frozen=True)
class AppSecrets:
    """Earshot's own app registration on a platform (from settings, per deployment)."""

    client_id: str = ""
    client_secret: str = ""
    webhook_secret: str = ""
    verify_token: str = ""
    base_url: str = ""


@dataclass(frozen=True)
class WebhookItem:
    """One item of a webhook delivery, with the platform account it is addressed to."""

    account_external_id: str
    item: InboundItem

    def __post_init__(self) -> None:
        """The account id is looked up in PostgreSQL: text under the same rule."""
        _clean(self, ("account_external_id",))


@dataclass(frozen=True)
class FetchResult:
    items: list[InboundItem]
    cursor: str


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str = ""
    expires_at: datetime | None = None
    account_external_id: str = ""
    handle: str = ""
    display_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_credentials(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            **self.extra,
        }


class Connector(ABC):
    """Base of the platform adapters; subclasses set `platform` and `capabilities`.

    Every platform sends and reconciles (abstract). The other methods are optional
    features: a platform without webhooks, polling or an OAuth redirect keeps the
    default, which raises NotImplementedError; callers check the capability flags
    (and the connect flow offers only platforms with an OAuth redirect).
    """

    platform: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    webhook_signature_header: ClassVar[str] = ""
    # `search_public` finds untagged public posts by keyword (listening, R1); the
    # poller reads this. Kept out of `Capabilities`, which the reply rules, the UI
    # and the public API read, because none of them needs it.
    keyword_search: ClassVar[bool] = False
    # `read_engagement` reads at most this many posts per call; 0: the platform's
    # engagement is not read (social.engagement skips the account).
    engagement_batch: ClassVar[int] = 0
    # The share of the account's request budget engagement reads may use: at most
    # `requests` calls per `per_seconds` (social.engagement counts them per
    # account), below the platform's published limit so replies and polls keep
    # theirs. None with engagement_batch 0.
    engagement_limit: ClassVar[SendLimit | None] = None
    # `send` makes no network call (it takes microseconds): the delivery task runs
    # it in its own thread instead of handing it to the delivery threads, whose
    # hand-off cost more than the call (helpdesk.tasks._send).
    sends_in_process: ClassVar[bool] = False

    def webhook_challenge(
        self, params: dict[str, str], app: AppSecrets
    ) -> tuple[int, str]:
        """Answer the platform's GET check (CRC, hub.challenge): (status, body)."""
        raise NotImplementedError

    def verify_webhook(
        self, body: bytes, headers: dict[str, str], app: AppSecrets
    ) -> bool:
        """True when the signature header matches an HMAC of the raw body."""
        raise NotImplementedError

    def webhook_event_id(self, body: bytes, payload: Any = UNPARSED) -> str:
        """A stable id of one delivery, so a replayed delivery is recognised.

        `payload` is `body` as `social.connectors.text.load_json` read it, when the
        caller has read it already (the receiver reads each body once); by default
        the body is read here."""
        raise NotImplementedError

    def parse_webhook(self, body: bytes) -> list[WebhookItem]:
        """The items of a verified delivery; raise ValueError when it is malformed."""
        raise NotImplementedError

    def fetch_since(self, account: AccountRef, cursor: str) -> FetchResult:
        """Poll for items newer than `cursor`; return them and the next cursor."""
        raise NotImplementedError

    def search_public(
        self, account: AccountRef, terms: Sequence[str], cursor: str
    ) -> FetchResult:
        """Public posts containing any of `terms`, newer than `cursor`, oldest first.

        For listening on platforms that only show what is asked for (connectors
        with `keyword_search` set). Each term is one or more space-separated
        tokens a post must all contain, in any order: a word (`acme`), a
        double-quoted phrase (`"acme air"`), a hashtag (`#acme`) or a mention
        (`@acme`); words are folded (`social.listening.terms` derives them,
        `search_tokens` splits them). The connector builds the platform's query,
        leaving out terms it cannot express or fit (and logging them), and leaves
        out the account's own posts. Returns the items and the next cursor
        (`cursor` unchanged when nothing is new); this cursor is the search's own,
        not `fetch_since`'s. Raises ConnectorError.
        """
        raise NotImplementedError

    def authorize_url(
        self, app: AppSecrets, *, redirect_uri: str, state: str, code_challenge: str
    ) -> str:
        """Where to send the admin to grant Earshot access (OAuth with PKCE)."""
        raise NotImplementedError

    def exchange_code(
        self, app: AppSecrets, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        """Trade an authorization code for tokens and the account's identity."""
        raise NotImplementedError

    def refresh(self, app: AppSecrets, account: AccountRef) -> TokenSet:
        """Refresh an expiring access token."""
        raise NotImplementedError

    def revoke(self, app: AppSecrets, account: AccountRef) -> None:
        """Revoke the account's tokens at the platform (on disconnect).

        Takes the app as well as the account's credentials because platforms
        authenticate the revocation with the app's client id (and secret).
        NotImplementedError means the platform offers no revocation; ConnectorError
        means it refused or could not be reached (disconnecting goes on locally).
        """
        raise NotImplementedError

    def grant_id(self, account: AccountRef) -> str:
        """The authorization grant behind the account's token, when one grant can
        serve several connected accounts (revoking it revokes them all); "" else."""
        return ""

    def hydrate(self, account: AccountRef, item: InboundItem) -> InboundItem:
        """Fetch the content of an item parsed with `needs_hydration`.

        Returns the item complete (needs_hydration False). Raises ConnectorError.
        """
        raise NotImplementedError

    def read_engagement(
        self, account: AccountRef, post_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """The engagement of up to `engagement_batch` public posts, in one call.

        `post_ids` are the posts' external ids as the connector parsed them
        (`InboundItem.external_id`). Returns their counts by id; a post the
        platform no longer shows (deleted, hidden, private) is left out, and so is
        a malformed entry of the answer (logged). Raises ConnectorError (a 429 with
        its retry_after) when the call fails.
        """
        raise NotImplementedError

    def send_limit(self, account: AccountRef, reply: OutboundReply) -> SendLimit | None:
        """The platform's limit on the account's sends of this kind, which delivery
        keeps to (waiting for the next window rather than failing); None when the
        platform publishes none (its 429 and Retry-After still apply)."""
        return None

    @abstractmethod
    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        """Send one reply; raise ConnectorError on failure."""
        raise NotImplementedError

    @abstractmethod
    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        """Look the reply up on the platform after a crash between send and record.

        Return the delivery when the platform has it (so it is not sent twice), None
        when it never arrived. Raise ConnectorError when the platform cannot tell.
        """
        raise NotImplementedError


_SEARCH_TOKEN = re.compile(r'"[^"]*"|[^\s"]+')


def search_tokens(term: str) -> list[str]:
    """The tokens of one search term (see `Connector.search_public`), phrases with
    their quotes: `'"acme air" refund'` → `['"acme air"', 'refund']`."""
    return _SEARCH_TOKEN.findall(term)


def item_to_dict(item: InboundItem) -> dict[str, Any]:
    """A JSON-safe form of an item, for task arguments."""
    return {
        "platform": item.platform,
        "external_id": item.external_id,
        "author": {
            "external_id": item.author.external_id,
            "handle": item.author.handle,
            "display_name": item.author.display_name,
            "followers": item.author.followers,
            "profile_url": item.author.profile_url,
        },
        "text": item.text,
        "created_at": item.created_at.isoformat(),
        "visibility": item.visibility,
        "kind": item.kind,
        "thread_ref": item.thread_ref,
        "in_reply_to": item.in_reply_to,
        "mentions_account": item.mentions_account,
        "url": item.url,
        "language": item.language,
    }


def item_from_dict(data: dict[str, Any]) -> InboundItem:
    """The inverse of item_to_dict."""
    return InboundItem(
        platform=data["platform"],
        external_id=data["external_id"],
        author=Author(**data["author"]),
        text=data["text"],
        created_at=datetime.fromisoformat(data["created_at"]),
        visibility=data["visibility"],
        kind=data.get("kind", "post"),
        thread_ref=data.get("thread_ref", ""),
        in_reply_to=data.get("in_reply_to", ""),
        mentions_account=bool(data.get("mentions_account")),
        url=data.get("url", ""),
        language=data.get("language", ""),
    )
