"""The API channel: messages from any custom source, pushed through the REST API.

Inbound items arrive at `POST /api/v1/t/<slug>/channel/messages/` (idempotent by the
source's external id). There is no platform to call: a reply is delivered by
handing it to the workspace's signed outbound webhooks, which carry
`message.updated` with the reply's text and `delivery_status: sent` to the
integration. So `send` only assigns the reply its stable external id.
"""

from typing import ClassVar

from django.utils import timezone

from social.connectors import register_connector
from social.connectors.base import (
    AccountRef,
    Capabilities,
    Connector,
    DeliveryResult,
    OutboundReply,
)


def reply_external_id(client_ref: str) -> str:
    return f"earshot-{client_ref}"


@register_connector
class ApiChannelConnector(Connector):
    platform: ClassVar[str] = "api"
    capabilities: ClassVar[Capabilities] = Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        max_length=10_000,
    )
    sends_in_process: ClassVar[bool] = True

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        """Hand the reply to the outbound webhooks; its id comes from client_ref."""
        return DeliveryResult(
            external_id=reply_external_id(reply.client_ref), sent_at=timezone.now()
        )

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        """Nothing leaves Earshot in `send`, so a crashed send is simply sent again."""
        return None
