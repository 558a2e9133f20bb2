"""The Sandbox network's connector: the same interface as X or Meta, over HTTP.

Webhooks are JSON signed with `X-Sandbox-Signature: sha256=<hex HMAC-SHA256>` of the
raw body (the app's webhook secret). Every public post reaches every connected
account (`mentions_account` says whether it was tagged); private messages reach
their recipient. Replies carry an `Idempotency-Key`, so `find_delivery` can ask the
network whether a reply arrived before a crash.
"""

import hmac
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone

from social import http
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
    engagement_from,
    hmac_sha256,
)
from social.connectors.text import load_json, malformed_as_value_error

SIGNATURE_HEADER = "x-sandbox-signature"
logger = logging.getLogger(__name__)


def _text(value: object) -> str:
    """A string or number of the payload as text; TypeError for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return str(value)


def _author(data: dict[str, Any]) -> Author:
    return Author(
        external_id=_text(data["id"]),
        handle=_text(data.get("handle") or ""),
        display_name=_text(data.get("name") or ""),
        followers=int(data.get("followers") or 0),
    )


def _post_item(post: dict[str, Any], *, mentions_account: bool) -> InboundItem:
    return InboundItem(
        platform="sandbox",
        external_id=_text(post["id"]),
        author=_author(post["author"]),
        text=_text(post["text"]),
        created_at=datetime.fromisoformat(post["created_at"]),
        visibility="public",
        # A reply in the brand's thread is a comment to the brand; the firehose's
        # other replies are just posts (listening decides about them).
        kind="comment" if post.get("in_reply_to") and mentions_account else "post",
        thread_ref=_text(post.get("root") or post["id"]),
        in_reply_to=_text(post.get("in_reply_to") or ""),
        mentions_account=mentions_account,
        url=_text(post.get("url") or ""),
        language=_text(post.get("language") or ""),
    )


def _message_item(message: dict[str, Any]) -> InboundItem:
    return InboundItem(
        platform="sandbox",
        external_id=_text(message["id"]),
        author=_author(message["sender"]),
        text=_text(message["text"]),
        created_at=datetime.fromisoformat(message["created_at"]),
        visibility="private",
        kind="direct_message",
        thread_ref=_text(message["thread"]),
    )


@register_connector
class SandboxConnector(Connector):
    platform: ClassVar[str] = "sandbox"
    capabilities: ClassVar[Capabilities] = Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        max_length=500,
        webhooks=True,
        polling=True,
    )
    webhook_signature_header: ClassVar[str] = SIGNATURE_HEADER
    engagement_batch: ClassVar[int] = 100
    # A tenth of the network's default 600 calls a minute per token.
    engagement_limit: ClassVar[SendLimit | None] = SendLimit(60, 60, "engagement")

    def webhook_challenge(
        self, params: dict[str, str], app: AppSecrets
    ) -> tuple[int, str]:
        """The Sandbox pings with ?challenge=<x> and expects it echoed."""
        challenge = params.get("challenge", "")
        return (200, challenge) if challenge else (400, "")

    def verify_webhook(
        self, body: bytes, headers: dict[str, str], app: AppSecrets
    ) -> bool:
        if not app.webhook_secret:
            return False
        expected = "sha256=" + hmac_sha256(app.webhook_secret, body).hex()
        return hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, ""))

    def webhook_event_id(self, body: bytes, payload: Any = UNPARSED) -> str:
        """The delivery's `event_id`; ValueError when there is none."""
        if payload is UNPARSED:
            payload = load_json(body)
        if type(payload) is dict and type(event_id := payload.get("event_id")) is str:
            return event_id  # the usual delivery, as `_text` gives it
        with malformed_as_value_error("the delivery"):
            return _text(payload["event_id"])

    def parse_webhook(self, body: bytes) -> list[WebhookItem]:
        """The post or message of a delivery (none for the account's own);
        ValueError when the body is not a Sandbox delivery."""
        with malformed_as_value_error("the delivery"):
            data = load_json(body)
            account = _text(data["for_account"]["id"])
            if data["type"] == "post.created":
                item = _post_item(
                    data["post"], mentions_account=bool(data.get("mentions_account"))
                )
            elif data["type"] == "message.created":
                item = _message_item(data["message"])
            else:
                raise ValueError(f"unknown event type {data['type']!r:.40}")
        if item.author.external_id == account:
            return []  # the account's own post or message
        return [WebhookItem(account_external_id=account, item=item)]

    def _api(self, base_url: str, path: str) -> str:
        return base_url.rstrip("/") + "/api/" + path

    def _auth(self, account: AccountRef) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {account.credentials.get('access_token', '')}"
        }

    def send_limit(self, account: AccountRef, reply: OutboundReply) -> SendLimit:
        """The network's limit: SANDBOX_RATE_LIMIT_PER_MINUTE API calls per token."""
        return SendLimit(
            int(getattr(settings, "SANDBOX_RATE_LIMIT_PER_MINUTE", 600)), 60, "api"
        )

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        headers = {**self._auth(account), "Idempotency-Key": reply.client_ref}
        if reply.visibility == "public":
            body: dict[str, Any] = {
                "text": reply.text,
                "in_reply_to": reply.in_reply_to,
            }
            response = http.request(
                "POST", self._api(account.base_url, "posts"), json=body, headers=headers
            )
        else:
            if not reply.recipient_id:
                raise ConnectorError(
                    "No recipient for the private message.", permanent=True
                )
            body = {"text": reply.text, "recipient_id": reply.recipient_id}
            response = http.request(
                "POST",
                self._api(account.base_url, "messages"),
                json=body,
                headers=headers,
            )
        data = response.json()
        return DeliveryResult(external_id=str(data["id"]), url=str(data.get("url", "")))

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        if reply.visibility != "public":
            # Private messages replay safely: the same Idempotency-Key returns the
            # first message, so re-sending is the lookup.
            return self.send(account, reply)
        response = http.request(
            "GET",
            self._api(account.base_url, "posts"),
            params={"idempotency_key": reply.client_ref},
            headers=self._auth(account),
        )
        found = response.json()["data"]
        if not found:
            return None
        return DeliveryResult(
            external_id=str(found[0]["id"]), url=str(found[0].get("url", ""))
        )

    def read_engagement(
        self, account: AccountRef, post_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """`GET /api/posts/lookup?ids=1,2` (at most 100): each post's
        `public_metrics` (reposts, likes, replies, quotes); unknown posts come
        back under `errors` and are left out, and so are ids that cannot be the
        network's (not numeric): no call when none is left."""
        ids = [post_id for post_id in post_ids if post_id.isdigit()]
        if not ids:
            return {}
        response = http.request(
            "GET",
            self._api(account.base_url, "posts/lookup"),
            params={"ids": ",".join(ids)},
            headers=self._auth(account),
        )
        answer = response.json()
        posts = answer.get("data") if isinstance(answer, dict) else None
        found: dict[str, Engagement] = {}
        for post in posts if isinstance(posts, list) else []:
            try:
                found[_text(post["id"])] = engagement_from(
                    post["public_metrics"],
                    reposts="reposts",
                    likes="likes",
                    replies="replies",
                    quotes="quotes",
                )
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning("skipped malformed Sandbox metrics: %r", exc)
        return found

    def fetch_since(self, account: AccountRef, cursor: str) -> FetchResult:
        """Mentions after `cursor` (a post id), following pages; oldest first."""
        items: list[InboundItem] = []
        since = cursor or "0"
        for _page in range(20):
            response = http.request(
                "GET",
                self._api(account.base_url, "mentions"),
                params={"since_id": since, "limit": 50},
                headers=self._auth(account),
            )
            data = response.json()
            items.extend(
                _post_item(post, mentions_account=True) for post in data["data"]
            )
            since = str(data["next_since_id"])
            if not data.get("has_more"):
                break
        return FetchResult(items=items, cursor=since)

    def authorize_url(
        self, app: AppSecrets, *, redirect_uri: str, state: str, code_challenge: str
    ) -> str:
        query = urlencode(
            {
                "client_id": app.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{app.base_url.rstrip('/')}/oauth/authorize?{query}"

    def _token(self, app: AppSecrets, form: dict[str, str]) -> TokenSet:
        response = http.request(
            "POST",
            self._api(app.base_url, "oauth/token"),
            data={
                **form,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        )
        data = response.json()
        account = data["account"]
        expires = timezone.now() + timedelta(seconds=int(data.get("expires_in", 3600)))
        return TokenSet(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token", ""),
            expires_at=expires,
            account_external_id=str(account["id"]),
            handle=str(account["handle"]),
            display_name=str(account.get("name", "")),
        )

    def exchange_code(
        self, app: AppSecrets, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        return self._token(
            app,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
        )

    def revoke(self, app: AppSecrets, account: AccountRef) -> None:
        """Revoke the grant (`POST oauth/revoke` with the app's client id and
        secret and the refresh token, else the access token). Raises
        ConnectorError when the network refuses or cannot be reached."""
        token = str(
            account.credentials.get("refresh_token")
            or account.credentials.get("access_token")
            or ""
        )
        if not token:
            raise ConnectorError("The account has no token to revoke.", permanent=True)
        http.request(
            "POST",
            self._api(app.base_url, "oauth/revoke"),
            data={
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "token": token,
            },
        )

    def refresh(self, app: AppSecrets, account: AccountRef) -> TokenSet:
        return self._token(
            app,
            {
                "grant_type": "refresh_token",
                "refresh_token": str(account.credentials.get("refresh_token", "")),
            },
        )
