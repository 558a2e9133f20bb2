"""Facebook Pages (comments + Messenger) and Instagram (FB-Login flavour) connectors.

Pure adapters (house rule 11): no database; every call goes through
`social.http.request` against the Graph API (`https://graph.facebook.com/v21.0`, or
`AccountRef.base_url`/`AppSecrets.base_url` for tests). platforms.md sections 4-6.

Decisions:
- Token: the Page access token travels as `Authorization: Bearer`, never in the URL,
  so it stays out of access logs and proxies. Graph's error body (`error.code`,
  `error_subcode`), which the ConnectorError carries, refines the mapping
  social.http made from the status alone.
- Error mapping on top of social.http: code 190 → re-authorize (auth, permanent);
  4/17/32/613 → rate limit, retried after Retry-After, the BUC header's
  `estimated_time_to_regain_access`, or DEFAULT_RATE_LIMIT_WAIT; the messaging
  window (code 10 subcode 2018278, Instagram's 2534022) and 551 (person not
  available) → permanent; other code 10 and 200-299 → permission, permanent.
- Messaging window: the standard window is 24 h after the customer's last message
  (Capabilities.private_reply_window). A human agent may answer up to 7 days with
  `messaging_type: MESSAGE_TAG, tag: HUMAN_AGENT` (needs Meta's Human Agent
  permission). OutboundReply does not carry the customer's last message time, so
  the connector sends RESPONSE first and, when Meta answers "outside of allowed
  window", sends again once with the HUMAN_AGENT tag: a reply older than 24 h but
  within 7 days goes out tagged, an older one fails permanently. The refused first
  call delivered nothing, so the resend cannot duplicate.
- Private reply to a public comment: `recipient.comment_id`, one per comment, within
  7 days; the customer must answer before the 24 h window opens.
- Reconciliation (find_delivery): Meta has no idempotency key. Public replies are
  looked up among the comment's replies; private messages in the Conversations API
  thread with the customer; a Facebook private reply through the comment's
  `can_reply_privately`. None is returned only when the lookup proves absence
  (listing complete, or reaching back past RECONCILE_WINDOW, or a private reply still
  allowed); otherwise ConnectorError (retryable) says reconciliation is unavailable,
  so the delivery task retries the check and never sends blind.
- Instagram `mentions` carry only ids: they become items with an empty author and
  text, external id "mention:<media_id>[:<comment_id>]" so a public answer can use
  the mentions edge; `InstagramConnector.hydrate_mention` fills them in.
- Echoes (`is_echo`), deliveries, reads, edits, removals and Instagram unsends are
  skipped, as is everything the Page/Instagram account authored itself.
"""

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

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
    InboundItem,
    OutboundReply,
    SendLimit,
    TokenSet,
    WebhookItem,
    delivery_object,
    engagement_from,
    hmac_sha256,
)
from social.connectors.text import parsed_each
from social.http import request

logger = logging.getLogger(__name__)

GRAPH_VERSION = "v21.0"
GRAPH_BASE = "https://graph.facebook.com"
DIALOG_BASE = "https://www.facebook.com"
SIGNATURE_HEADER = "X-Hub-Signature-256"
STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
RECONCILE_WINDOW = timedelta(hours=48)
DEFAULT_RATE_LIMIT_WAIT = 300.0
TOKEN_EXPIRED = 190
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
NOT_AVAILABLE = 551
# "Some of the aliases you requested do not exist" (a deleted object in `?ids=`).
INVALID_PARAMETER = 100
WINDOW_SUBCODES = frozenset({2018278, 2534022})
MENTION_PREFIX = "mention:"


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


def _epoch(value: object) -> datetime:
    """Graph webhook times: unix seconds (feed, entry.time) or milliseconds."""
    number = _int(value)
    if not number:
        raise ValueError("The event has no time.")
    return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, tz=UTC)


def _graph_time(value: object) -> datetime:
    """Graph read times: ISO 8601 with a +0000 offset."""
    return datetime.fromisoformat(_str(value))


def sign(secret: str, body: bytes) -> str:
    """`sha256=` + HEX HMAC-SHA256 of the raw body: Meta's X-Hub-Signature-256."""
    return "sha256=" + hmac_sha256(secret, body).hex()


class MetaError(ConnectorError):
    """A Graph API error with Meta's `code` and `error_subcode`."""

    def __init__(self, message: str, *, code: int, subcode: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code
        self.subcode = subcode

    @property
    def outside_window(self) -> bool:
        return self.subcode in WINDOW_SUBCODES


def _rate_limit_wait(error: ConnectorError) -> float:
    header = error.headers.get("retry-after", "")
    if header.isdigit():
        return float(header)
    try:
        usage = json.loads(error.headers.get("x-business-use-case-usage", "{}"))
    except ValueError:
        usage = {}
    minutes = [
        _int(entry.get("estimated_time_to_regain_access"))
        for entries in _obj(usage).values()
        for entry in _dicts(entries)
    ]
    wait = max(minutes, default=0) * 60.0
    return wait or DEFAULT_RATE_LIMIT_WAIT


def map_graph_error(error: ConnectorError) -> ConnectorError:
    """Refine social.http's mapping with the Graph error body, when there is one."""
    body = _obj(_obj(error.json()).get("error"))
    if not body:
        return error
    code, subcode = _int(body.get("code")), _int(body.get("error_subcode"))
    said = _str(body.get("message")) or error.message
    kwargs: dict[str, Any] = {"code": code, "subcode": subcode, "status": error.status}
    if code == TOKEN_EXPIRED:
        message = f"Meta rejected the access token ({said}). Connect the account again."
        return MetaError(message, auth=True, permanent=True, **kwargs)
    if code in RATE_LIMIT_CODES:
        wait = _rate_limit_wait(error)
        return MetaError(f"Meta rate limit: {said}", retry_after=wait, **kwargs)
    if subcode in WINDOW_SUBCODES:
        message = f"The messaging window with this person has closed ({said})."
        return MetaError(message, permanent=True, **kwargs)
    if code == NOT_AVAILABLE:
        message = f"This person can't receive messages from you right now ({said})."
        return MetaError(message, permanent=True, **kwargs)
    if code == 10 or 200 <= code < 300:
        message = f"Meta refused for lack of permission ({said})."
        return MetaError(message, permanent=True, **kwargs)
    return MetaError(
        said,
        permanent=error.permanent,
        retry_after=error.retry_after,
        auth=error.auth,
        **kwargs,
    )


def graph_call(
    method: str, url: str, *, token: str = "", **kwargs: Any
) -> dict[str, Any]:
    """One Graph request through social.http; the JSON object answered.

    Raises ConnectorError, refined by `map_graph_error` (MetaError) when Graph said why.
    """
    if token:
        kwargs["headers"] = {
            **kwargs.get("headers", {}),
            "Authorization": f"Bearer {token}",
        }
    try:
        response = request(method, url, **kwargs)
    except ConnectorError as error:
        raise map_graph_error(error) from error
    return _obj(response.json())


def _required(target: str) -> str:
    if not target:
        raise ConnectorError("The reply has nothing to answer.", permanent=True)
    return target


def _capabilities(*, max_length: int) -> Capabilities:
    """What Facebook and Instagram both allow; only the length limit differs.

    Users start private conversations (no cold DMs); a Page may answer a public
    comment privately once; replies need the 24 h window (HUMAN_AGENT: 7 days).
    """
    return Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=True,
        start_private=False,
        private_reply_window=STANDARD_WINDOW,
        max_length=max_length,
        webhooks=True,
        polling=False,
    )


def _instagram_author(external_id: str, username: str) -> Author:
    profile = f"https://www.instagram.com/{username}/" if username else ""
    return Author(external_id=external_id, handle=username, profile_url=profile)


def _attachments(message: dict[str, Any]) -> str:
    kinds = [_str(a.get("type")) or "file" for a in _dicts(message.get("attachments"))]
    return " ".join(f"[{kind}]" for kind in kinds)


class MetaConnector(Connector):
    """What Facebook and Instagram share: webhooks, the Send API, Facebook Login."""

    object_type: ClassVar[str] = ""
    reply_edge: ClassVar[str] = ""
    conversation_platform: ClassVar[str] = ""
    # Whether the reply listing can be read newest first (then one page that reaches
    # back past RECONCILE_WINDOW proves absence).
    replies_newest_first: ClassVar[bool] = False
    reply_fields: ClassVar[str] = ""
    scopes: ClassVar[tuple[str, ...]] = ()
    webhook_signature_header: ClassVar[str] = SIGNATURE_HEADER

    # Webhooks

    def webhook_challenge(
        self, params: dict[str, str], app: AppSecrets
    ) -> tuple[int, str]:
        """(200, hub.challenge) when hub.mode is subscribe and hub.verify_token is
        ours (constant-time compare); (403, "") otherwise or when none is set."""
        token = params.get("hub.verify_token", "")
        if (
            params.get("hub.mode") == "subscribe"
            and app.verify_token
            and hmac.compare_digest(token.encode(), app.verify_token.encode())
        ):
            return 200, params.get("hub.challenge", "")
        return 403, ""

    def verify_webhook(
        self, body: bytes, headers: dict[str, str], app: AppSecrets
    ) -> bool:
        """`X-Hub-Signature-256` against a hex HMAC-SHA256 of the raw bytes with the
        app secret (client_secret); False when the header or the secret is missing.
        Never re-serialise the JSON: Meta escapes non-ASCII as \\uXXXX."""
        lowered = {key.lower(): value for key, value in headers.items()}
        header = lowered.get(SIGNATURE_HEADER.lower(), "")
        if not header or not app.client_secret:
            return False
        return hmac.compare_digest(sign(app.client_secret, body), header)

    def webhook_event_id(self, body: bytes, payload: Any = UNPARSED) -> str:
        """A SHA-256 of the delivery's event keys (field, comment id and verb; message
        mid; any other event by its content), so a redelivery gets the same id."""
        payload = delivery_object(body, payload)
        keys = [_str(payload.get("object"))]
        for entry in _dicts(payload.get("entry")):
            for change in _dicts(entry.get("changes")):
                value = _obj(change.get("value"))
                ident = (
                    value.get("comment_id") or value.get("id") or value.get("media_id")
                )
                keys.append(f"{change.get('field')}:{ident}:{value.get('verb', '')}")
            for event in _dicts(entry.get("messaging")):
                mid = _obj(event.get("message")).get("mid")
                keys.append(_str(mid) or json.dumps(event, sort_keys=True))
        return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()

    def parse_webhook(self, body: bytes) -> list[WebhookItem]:
        """Every item of every entry (the addressed account is `entry.id`), once.

        ValueError when the body is not JSON or is for another object type (a
        Facebook delivery sent to the Instagram endpoint, or the reverse).
        """
        payload = delivery_object(body)
        if payload.get("object") != self.object_type:
            raise ValueError(f"Not an object={self.object_type} delivery.")
        found: dict[tuple[str, str], WebhookItem] = {}
        for entry in _dicts(payload.get("entry")):
            account = _str(entry.get("id"))
            if not account:
                raise ValueError("A webhook entry has no id.")
            change_item = partial(self._change_item, account, time=entry.get("time"))
            items = parsed_each(
                f"{self.platform} change", change_item, _dicts(entry.get("changes"))
            )
            items += parsed_each(
                f"{self.platform} message",
                partial(self._messaging_item, account),
                _dicts(entry.get("messaging")),
            )
            for item in items:
                found.setdefault(
                    (account, item.external_id), WebhookItem(account, item)
                )
        return list(found.values())

    def _change_item(
        self, account: str, change: dict[str, Any], time: object
    ) -> InboundItem | None:
        raise NotImplementedError

    def _messaging_item(
        self, account: str, event: dict[str, Any]
    ) -> InboundItem | None:
        message = _obj(event.get("message"))
        if not message or message.get("is_echo") or message.get("is_deleted"):
            return None
        sender = _str(_obj(event.get("sender")).get("id"))
        mid = _str(message.get("mid"))
        if not mid or not sender or sender == account:
            return None
        return InboundItem(
            platform=self.platform,
            external_id=mid,
            author=Author(external_id=sender),
            text=_str(message.get("text")) or _attachments(message),
            created_at=_epoch(event.get("timestamp")),
            visibility="private",
            kind="direct_message",
            thread_ref=sender,
            in_reply_to=_str(_obj(message.get("reply_to")).get("mid")),
            raw=event,
        )

    # Sending

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        """Answer a comment publicly, a comment privately (`recipient.comment_id`), or
        a conversation (`recipient.id`, RESPONSE, then HUMAN_AGENT past 24 h).

        Raises ConnectorError/MetaError: permanent for a missing target, closed
        windows, permissions and a second private reply; auth for code 190;
        retryable for rate limits and 5xx.
        """
        if reply.visibility == "public":
            return self._send_public(account, reply)
        self._check_private_text(reply.text)
        url = self._url(account, f"{self._messaging_node(account)}/messages")
        message = {"text": reply.text}
        if reply.private_reply_to_public:
            body: dict[str, Any] = {
                "recipient": {"comment_id": self._comment_id(reply.in_reply_to)},
                "message": message,
            }
            data = graph_call("POST", url, token=self._token(account), json=body)
        else:
            data = self._send_message(account, url, reply, message)
        return DeliveryResult(
            external_id=_str(data.get("message_id")), sent_at=timezone.now()
        )

    def _send_message(
        self,
        account: AccountRef,
        url: str,
        reply: OutboundReply,
        message: dict[str, str],
    ) -> dict[str, Any]:
        recipient = {"id": _required(reply.recipient_id or reply.in_reply_to)}
        body = {
            "recipient": recipient,
            "messaging_type": "RESPONSE",
            "message": message,
        }
        token = self._token(account)
        try:
            return graph_call("POST", url, token=token, json=body)
        except MetaError as error:
            if not error.outside_window:
                raise
        tagged = {**body, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        try:
            return graph_call("POST", url, token=token, json=tagged)
        except MetaError as error:
            if not error.outside_window:
                raise
            raise MetaError(
                "More than 7 days have passed since the customer's last message; "
                "Meta allows no further replies until they write again.",
                code=error.code,
                subcode=error.subcode,
                permanent=True,
                status=error.status,
            ) from error

    def _send_public(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        url = self._url(account, f"{_required(reply.in_reply_to)}/{self.reply_edge}")
        body = {"message": reply.text}
        data = graph_call("POST", url, token=self._token(account), json=body)
        comment_id = _str(data.get("id"))
        return DeliveryResult(
            external_id=comment_id,
            url=self._comment_url(comment_id),
            sent_at=timezone.now(),
        )

    def _check_private_text(self, text: str) -> None:
        """Platform limits the character count in Capabilities cannot express."""

    @staticmethod
    def _comment_id(target: str) -> str:
        return _required(target)

    def _comment_url(self, comment_id: str) -> str:
        return ""

    # Reconciliation

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        """Look for a reply sent before a crash (Meta has no idempotency key).

        Public: the comment's replies, newest first, for one by this account with the
        same text. Private: the newest messages of the Conversations API thread with
        the customer. Private reply to a comment: see `_find_private_reply`. None only
        when absence is proven (module docstring); otherwise ConnectorError.
        """
        token = self._token(account)
        if reply.visibility == "public":
            return self._find_public(account, reply, token)
        if reply.private_reply_to_public:
            return self._find_private_reply(account, reply, token)
        return self._find_message(account, reply, token)

    def _find_public(
        self, account: AccountRef, reply: OutboundReply, token: str
    ) -> DeliveryResult | None:
        url = self._url(account, f"{reply.in_reply_to}/{self.reply_edge}")
        listing = graph_call("GET", url, token=token, params=self._listing_params())
        rows = [
            (
                _str(row.get("id")),
                _str(_obj(row.get("from")).get("id")),
                _str(row.get("message") or row.get("text")),
                _str(row.get("created_time") or row.get("timestamp")),
            )
            for row in _dicts(listing.get("data"))
        ]
        for comment_id, author, text, created in rows:
            if author == account.external_id and text.strip() == reply.text.strip():
                return DeliveryResult(
                    external_id=comment_id,
                    url=self._comment_url(comment_id),
                    sent_at=_graph_time(created) if created else None,
                )
        complete = not _obj(listing.get("paging")).get("next")
        times = [created for *_, created in rows if created]
        self._check_absent(complete, times if self.replies_newest_first else [])
        return None

    def _listing_params(self) -> dict[str, str]:
        params = {"fields": self.reply_fields, "limit": "100"}
        if self.replies_newest_first:
            params["order"] = "reverse_chronological"
        return params

    def _find_message(
        self, account: AccountRef, reply: OutboundReply, token: str
    ) -> DeliveryResult | None:
        url = self._url(account, f"{self._messaging_node(account)}/conversations")
        params = {
            "platform": self.conversation_platform,
            "user_id": reply.recipient_id or reply.in_reply_to,
            "fields": "messages.limit(50){id,message,from,created_time}",
        }
        threads = _dicts(graph_call("GET", url, token=token, params=params).get("data"))
        if not threads:
            return None
        messages = _obj(threads[0].get("messages"))
        times = []
        for message in _dicts(messages.get("data")):
            times.append(_str(message.get("created_time")))
            mine = _str(_obj(message.get("from")).get("id")) == account.external_id
            if mine and _str(message.get("message")).strip() == reply.text.strip():
                return DeliveryResult(
                    external_id=_str(message.get("id")),
                    sent_at=_graph_time(times[-1]) if times[-1] else None,
                )
        complete = not _obj(messages.get("paging")).get("next")
        self._check_absent(complete, [time for time in times if time])
        return None

    def _find_private_reply(
        self, account: AccountRef, reply: OutboundReply, token: str
    ) -> DeliveryResult | None:
        raise ConnectorError(
            f"{self.platform.title()} offers no way to look up a private reply, so "
            "Earshot cannot tell whether this one was delivered before the "
            "interruption. It is not sent again automatically; check the inbox on "
            "the platform."
        )

    @staticmethod
    def _check_absent(complete: bool, times: list[str]) -> None:
        """Pass when the listing proves absence: it is complete, or (newest first)
        reaches back before RECONCILE_WINDOW. Otherwise raise ConnectorError."""
        window_start = timezone.now() - RECONCILE_WINDOW
        if complete or any(_graph_time(time) < window_start for time in times):
            return
        raise ConnectorError(
            "Meta's listing is too long to tell whether this reply was delivered "
            "before the interruption; reconciliation is unavailable, will check again."
        )

    # Facebook Login

    def authorize_url(
        self, app: AppSecrets, *, redirect_uri: str, state: str, code_challenge: str
    ) -> str:
        """The Facebook Login dialog with this platform's scopes.

        `code_challenge` is not sent: the code is exchanged with the app secret
        (confidential client) and PKCE for this dialog is not in the reference.
        """
        query = {
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
            "scope": ",".join(self.scopes),
        }
        host = DIALOG_BASE
        if app.base_url:
            parts = urlsplit(app.base_url)
            host = f"{parts.scheme}://{parts.netloc}"
        return f"{host}/{GRAPH_VERSION}/dialog/oauth?{urlencode(query)}"

    def exchange_code(
        self, app: AppSecrets, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        """Code → user token (`GET /oauth/access_token`) → long-lived user token
        (`fb_exchange_token`, so the Page tokens derived from it do not expire) →
        `GET /me/accounts`. Returns the first eligible Page's token, with every Page
        in `extra["pages"]`. ConnectorError (permanent) when no Page qualifies."""
        base = f"{(app.base_url or GRAPH_BASE).rstrip('/')}/{GRAPH_VERSION}"
        owner = {"client_id": app.client_id, "client_secret": app.client_secret}
        short = graph_call(
            "GET",
            f"{base}/oauth/access_token",
            params={**owner, "redirect_uri": redirect_uri, "code": code},
        )
        exchange = {
            **owner,
            "grant_type": "fb_exchange_token",
            "fb_exchange_token": _str(short.get("access_token")),
        }
        long_lived = graph_call("GET", f"{base}/oauth/access_token", params=exchange)
        user_token = _str(long_lived.get("access_token"))
        # The person who granted access: revoking on disconnect names them.
        me = graph_call("GET", f"{base}/me", token=user_token, params={"fields": "id"})
        fields = (
            "id,name,username,access_token,instagram_business_account{id,username,name}"
        )
        accounts = graph_call(
            "GET",
            f"{base}/me/accounts",
            token=user_token,
            params={"fields": fields, "limit": "100"},
        )
        pages = [
            {
                "id": _str(page.get("id")),
                "name": _str(page.get("name")),
                "username": _str(page.get("username")),
                "access_token": _str(page.get("access_token")),
                "instagram": _obj(page.get("instagram_business_account")),
            }
            for page in _dicts(accounts.get("data"))
        ]
        tokens = self._pick(pages)
        return replace(tokens, extra={**tokens.extra, "user_id": _str(me.get("id"))})

    def _pick(self, pages: list[dict[str, Any]]) -> TokenSet:
        raise NotImplementedError

    def refresh(self, app: AppSecrets, account: AccountRef) -> TokenSet:
        """Page tokens from a long-lived user token do not expire: the same token.

        ConnectorError(auth=True, permanent=True) when there is none; a revoked one
        surfaces as code 190 on the next call.
        """
        token = self._token(account)
        kept = {
            key: value
            for key, value in account.credentials.items()
            if key not in ("access_token", "refresh_token", "expires_at")
        }
        return TokenSet(
            access_token=token,
            account_external_id=account.external_id,
            handle=account.handle,
            extra=kept,
        )

    def revoke(self, app: AppSecrets, account: AccountRef) -> None:
        """Remove Earshot's grant (`DELETE /{user-id}/permissions`, app token).

        Meta revokes per person, not per Page: every Page and Instagram account
        that person shared with Earshot loses access (see `grant_id`). Raises
        ConnectorError when the granting user is unknown (connected before it was
        recorded), or Meta refuses or cannot be reached.
        """
        user_id = _str(account.credentials.get("user_id"))
        if not user_id:
            raise ConnectorError(
                "Earshot does not know which Facebook user granted this access; "
                "remove the Earshot app in that person's Facebook settings.",
                permanent=True,
            )
        base = f"{(app.base_url or GRAPH_BASE).rstrip('/')}/{GRAPH_VERSION}"
        graph_call(
            "DELETE",
            f"{base}/{user_id}/permissions",
            token=f"{app.client_id}|{app.client_secret}",
        )

    def grant_id(self, account: AccountRef) -> str:
        """`meta:<user id>`: one Facebook user's grant covers every Page and
        Instagram account they shared."""
        user_id = _str(account.credentials.get("user_id"))
        return f"meta:{user_id}" if user_id else ""

    # Engagement

    # Graph reads up to 50 objects per request (`?ids=`).
    engagement_batch: ClassVar[int] = 50
    # Page tokens fall under Business Use Case limits (4,800 calls times engaged
    # users a day per Page, platforms.md section 4), unknowable here: 200 an hour.
    engagement_limit: ClassVar[SendLimit | None] = SendLimit(200, 3600, "engagement")
    # The comment's count fields, by Engagement name.
    engagement_fields: ClassVar[dict[str, str]] = {}

    def read_engagement(
        self, account: AccountRef, post_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """`GET /{version}/?ids=<up to 50>&fields=..` with the Page token: the
        comments' counts (`engagement_fields`). Graph refuses the whole request
        when one id no longer exists (code 100): the ids are then read in halves,
        and a single missing id is left out. Raises ConnectorError (rate limits,
        codes 4/17/32/613, with their wait)."""
        try:
            answer = graph_call(
                "GET",
                self._url(account, ""),
                token=self._token(account),
                params={
                    "ids": ",".join(post_ids),
                    "fields": ",".join(self.engagement_fields.values()),
                },
            )
        except MetaError as error:
            if error.code != INVALID_PARAMETER:
                raise
            if len(post_ids) == 1:
                return {}
            half = len(post_ids) // 2
            return self.read_engagement(
                account, post_ids[:half]
            ) | self.read_engagement(account, post_ids[half:])
        found: dict[str, Engagement] = {}
        for object_id, node in answer.items():
            try:
                found[object_id] = engagement_from(node, **self.engagement_fields)
            except ValueError as exc:
                logger.warning("Graph ids: malformed counts left out: %r", exc)
        return found

    # Helpers

    @staticmethod
    def _token(account: AccountRef) -> str:
        token = _str(account.credentials.get("access_token"))
        if not token:
            raise ConnectorError(
                "The account has no Page access token; connect it again.",
                auth=True,
                permanent=True,
            )
        return token

    @staticmethod
    def _url(account: AccountRef, path: str) -> str:
        return f"{(account.base_url or GRAPH_BASE).rstrip('/')}/{GRAPH_VERSION}/{path}"

    def _messaging_node(self, account: AccountRef) -> str:
        return account.external_id


@register_connector
class FacebookConnector(MetaConnector):
    """A Facebook Page: feed comments and Messenger, with the Page access token."""

    platform: ClassVar[str] = "facebook"
    object_type: ClassVar[str] = "page"
    reply_edge: ClassVar[str] = "comments"
    conversation_platform: ClassVar[str] = "messenger"
    replies_newest_first: ClassVar[bool] = True
    reply_fields: ClassVar[str] = "id,message,from,created_time"
    engagement_fields: ClassVar[dict[str, str]] = {
        "likes": "like_count",
        "replies": "comment_count",
    }
    scopes: ClassVar[tuple[str, ...]] = (
        "pages_show_list",
        "pages_manage_metadata",
        "pages_read_engagement",
        "pages_read_user_content",
        "pages_manage_engagement",
        "pages_messaging",
    )
    # One limit covers both channels: Messenger text (2000 characters) is stricter
    # than a comment (8000).
    capabilities: ClassVar[Capabilities] = _capabilities(max_length=2000)

    def _change_item(
        self, account: str, change: dict[str, Any], time: object
    ) -> InboundItem | None:
        """A new comment (`feed`, item=comment, verb=add) by someone else."""
        value = _obj(change.get("value"))
        if (
            change.get("field") != "feed"
            or value.get("item") != "comment"
            or value.get("verb") != "add"
        ):
            return None
        sender = _obj(value.get("from"))
        author_id = _str(sender.get("id"))
        comment_id = _str(value.get("comment_id"))
        if not author_id or not comment_id:
            # Without an author the comment cannot be told apart from others'.
            logger.warning("facebook comment %s has no author; skipped", comment_id)
            return None
        if author_id == account:
            return None
        post_id = _str(value.get("post_id"))
        return InboundItem(
            platform=self.platform,
            external_id=comment_id,
            author=Author(external_id=author_id, display_name=_str(sender.get("name"))),
            text=_str(value.get("message")),
            created_at=_epoch(value.get("created_time") or time),
            visibility="public",
            kind="comment",
            thread_ref=post_id,
            in_reply_to=_str(value.get("parent_id")) or post_id,
            url=self._comment_url(comment_id),
            raw=value,
        )

    def _comment_url(self, comment_id: str) -> str:
        return f"https://www.facebook.com/{comment_id}" if comment_id else ""

    def _find_private_reply(
        self, account: AccountRef, reply: OutboundReply, token: str
    ) -> DeliveryResult | None:
        """Proven absent while the comment still allows a private reply (only one
        is allowed); otherwise the platform cannot say (ConnectorError)."""
        url = self._url(account, reply.in_reply_to)
        params = {"fields": "can_reply_privately"}
        comment = graph_call("GET", url, token=token, params=params)
        if comment.get("can_reply_privately") is True:
            return None
        return super()._find_private_reply(account, reply, token)

    def _pick(self, pages: list[dict[str, Any]]) -> TokenSet:
        if not pages:
            raise ConnectorError(
                "No Facebook Page was shared with Earshot; connect again and choose "
                "a Page.",
                permanent=True,
            )
        page = pages[0]
        return TokenSet(
            access_token=page["access_token"],
            account_external_id=page["id"],
            handle=page["username"] or page["name"],
            display_name=page["name"],
            extra={"pages": pages},
        )


@register_connector
class InstagramConnector(MetaConnector):
    """An Instagram professional account linked to a Page (FB-Login flavour)."""

    platform: ClassVar[str] = "instagram"
    object_type: ClassVar[str] = "instagram"
    reply_edge: ClassVar[str] = "replies"
    conversation_platform: ClassVar[str] = "instagram"
    reply_fields: ClassVar[str] = "id,text,from,timestamp"
    # An Instagram comment shows its likes; its replies are an edge, not a count.
    engagement_fields: ClassVar[dict[str, str]] = {"likes": "like_count"}
    scopes: ClassVar[tuple[str, ...]] = (
        "instagram_basic",
        "instagram_manage_comments",
        "instagram_manage_messages",
        "pages_show_list",
        "pages_read_engagement",
        "pages_manage_metadata",
        "pages_messaging",
    )
    # DM text is at most 1000 bytes, stricter than a comment (2200 characters).
    capabilities: ClassVar[Capabilities] = _capabilities(max_length=1000)
    message_bytes: ClassVar[int] = 1000

    def _change_item(
        self, account: str, change: dict[str, Any], time: object
    ) -> InboundItem | None:
        """A comment (`comments`, `live_comments`) or an @mention (`mentions`)."""
        field = change.get("field")
        value = _obj(change.get("value"))
        if field == "mentions":
            return self._mention_item(value, time)
        if field not in ("comments", "live_comments"):
            return None
        sender = _obj(value.get("from"))
        author_id = _str(sender.get("id"))
        comment_id = _str(value.get("id"))
        if not author_id or not comment_id or author_id == account:
            return None
        username = _str(sender.get("username"))
        media_id = _str(_obj(value.get("media")).get("id"))
        return InboundItem(
            platform=self.platform,
            external_id=comment_id,
            author=_instagram_author(author_id, username),
            text=_str(value.get("text")),
            created_at=_epoch(time),
            visibility="public",
            kind="comment",
            thread_ref=media_id,
            in_reply_to=_str(value.get("parent_id")) or media_id,
            raw=value,
        )

    def _mention_item(self, value: dict[str, Any], time: object) -> InboundItem | None:
        media_id = _str(value.get("media_id"))
        if not media_id:
            return None
        comment_id = _str(value.get("comment_id"))
        key = f"{MENTION_PREFIX}{media_id}" + (f":{comment_id}" if comment_id else "")
        return InboundItem(
            platform=self.platform,
            external_id=key,
            author=Author(external_id=""),
            text="",
            created_at=_epoch(time),
            visibility="public",
            kind="mention",
            thread_ref=f"{MENTION_PREFIX}{media_id}",
            mentions_account=True,
            raw=value,
            needs_hydration=True,
        )

    def hydrate(self, account: AccountRef, item: InboundItem) -> InboundItem:
        """Mentions carry only ids: read their content (`hydrate_mention`)."""
        if not item.needs_hydration:
            return item
        return self.hydrate_mention(account, item)

    def hydrate_mention(self, account: AccountRef, item: InboundItem) -> InboundItem:
        """Fill in a mention's text, author and time from the Graph API.

        `GET /{ig-user-id}?fields=mentioned_comment.comment_id(…){…}` (or
        `mentioned_media.media_id(…){…}` for a caption mention). The author is known
        by username only, which becomes the external id. ConnectorError on failure.
        """
        media_id, _, comment_id = item.external_id.removeprefix(
            MENTION_PREFIX
        ).partition(":")
        if comment_id:
            key = "mentioned_comment"
            fields = f"{key}.comment_id({comment_id}){{id,text,timestamp,username}}"
        else:
            key = "mentioned_media"
            fields = f"{key}.media_id({media_id}){{id,caption,timestamp,username}}"
        url = self._url(account, account.external_id)
        found = _obj(
            graph_call(
                "GET", url, token=self._token(account), params={"fields": fields}
            ).get(key)
        )
        username = _str(found.get("username"))
        if not username:
            raise ConnectorError(
                f"Instagram returned no {key.replace('_', ' ')} for this mention "
                "(deleted, or no longer visible to the account).",
                permanent=True,
            )
        return replace(
            item,
            author=_instagram_author(username, username),
            text=_str(found.get("text") or found.get("caption")),
            created_at=_graph_time(found["timestamp"])
            if found.get("timestamp")
            else item.created_at,
            raw={**item.raw, key: found},
            needs_hydration=False,
        )

    def _send_public(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        if not reply.in_reply_to.startswith(MENTION_PREFIX):
            return super()._send_public(account, reply)
        media_id, _, comment_id = reply.in_reply_to.removeprefix(
            MENTION_PREFIX
        ).partition(":")
        body = {"media_id": media_id, "message": reply.text}
        if comment_id:
            body["comment_id"] = comment_id
        url = self._url(account, f"{account.external_id}/mentions")
        data = graph_call("POST", url, token=self._token(account), json=body)
        return DeliveryResult(external_id=_str(data.get("id")), sent_at=timezone.now())

    def _check_private_text(self, text: str) -> None:
        size = len(text.encode())
        if size > self.message_bytes:
            raise ConnectorError(
                f"Instagram messages can be at most {self.message_bytes} bytes; this "
                f"one is {size}. Shorten it.",
                permanent=True,
            )

    def _find_public(
        self, account: AccountRef, reply: OutboundReply, token: str
    ) -> DeliveryResult | None:
        if not reply.in_reply_to.startswith(MENTION_PREFIX):
            return super()._find_public(account, reply, token)
        raise ConnectorError(
            "Instagram offers no way to look up an answer to a mention, so Earshot "
            "cannot tell whether this one was delivered before the interruption."
        )

    @staticmethod
    def _comment_id(target: str) -> str:
        if target.startswith(MENTION_PREFIX):
            target = target.removeprefix(MENTION_PREFIX).partition(":")[2]
        return _required(target)

    def _messaging_node(self, account: AccountRef) -> str:
        """The linked Page sends Instagram messages; `me` is that Page's token."""
        return _str(account.credentials.get("page_id")) or "me"

    def _pick(self, pages: list[dict[str, Any]]) -> TokenSet:
        linked = [page for page in pages if page["instagram"].get("id")]
        if not linked:
            raise ConnectorError(
                "None of the shared Facebook Pages has an Instagram professional "
                "account linked; link one in Meta Business Suite and connect again.",
                permanent=True,
            )
        page = linked[0]
        instagram = page["instagram"]
        username = _str(instagram.get("username"))
        return TokenSet(
            access_token=page["access_token"],
            account_external_id=_str(instagram.get("id")),
            handle=username,
            display_name=_str(instagram.get("name")) or username,
            extra={"page_id": page["id"], "pages": pages},
        )
