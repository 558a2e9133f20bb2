"""A connector that implements the real interface and records what it was asked to do.

It stands in for a platform until the social connectors land; the delivery code path
under test is the real one (claim, send through the interface, record).
"""

import fcntl
import itertools
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from django.utils import timezone

from social.connectors.base import (
    AccountRef,
    Capabilities,
    Connector,
    ConnectorError,
    DeliveryResult,
    OutboundReply,
)

_ids = itertools.count(1000)


class CrashAfterSend(BaseException):
    """Raised after the platform accepted a reply: the worker dies before recording."""


@dataclass
class Behaviour:
    errors: list[ConnectorError] = field(default_factory=list)
    crash_after_send: bool = False
    lookup_error: ConnectorError | None = None


class FakeConnector(Connector):
    platform: ClassVar[str] = "sandbox"
    capabilities: ClassVar[Capabilities] = Capabilities(
        private_message=True, start_private=False, max_length=280
    )
    sent: ClassVar[list[OutboundReply]] = []
    behaviour: ClassVar[Behaviour] = Behaviour()

    @classmethod
    def reset(cls) -> None:
        cls.sent = []
        cls.behaviour = Behaviour()

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        if self.behaviour.errors:
            raise self.behaviour.errors.pop(0)
        self.sent.append(reply)
        if self.behaviour.crash_after_send:
            self.behaviour.crash_after_send = False
            raise CrashAfterSend
        return DeliveryResult(
            external_id=f"out-{next(_ids)}", url="https://sandbox.test/p"
        )

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        if self.behaviour.lookup_error is not None:
            raise self.behaviour.lookup_error
        for index, sent in enumerate(self.sent):
            if sent.client_ref == reply.client_ref:
                return DeliveryResult(external_id=f"found-{index}")
        return None


class FakeX(FakeConnector):
    platform: ClassVar[str] = "x"
    capabilities: ClassVar[Capabilities] = Capabilities(
        public_reply_needs_mention=True, start_private=False, max_length=280
    )


class FakeMeta(FakeConnector):
    platform: ClassVar[str] = "facebook"
    capabilities: ClassVar[Capabilities] = Capabilities(
        private_reply_to_public=True,
        start_private=False,
        private_reply_window=timedelta(hours=24),
        max_length=8000,
    )


class FileConnector(Connector):
    """Records sends in a JSON-lines file, so a killed process's send stays visible."""

    platform: ClassVar[str] = "sandbox"
    capabilities: ClassVar[Capabilities] = FakeConnector.capabilities
    path: ClassVar[Path] = Path("/tmp/earshot-file-connector.jsonl")
    die_after_send: ClassVar[bool] = False

    def _lines(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        # Delivery sends a batch's replies concurrently: counting the lines and
        # appending one is a single step under the file's lock, so every post gets
        # its own id, as on a real platform.
        with self.path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            external_id = f"file-{len(self._lines()) + 1}"
            handle.write(
                json.dumps({"ref": reply.client_ref, "id": external_id}) + "\n"
            )
            handle.flush()
        if self.die_after_send:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return DeliveryResult(external_id=external_id, sent_at=timezone.now())

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        for line in self._lines():
            if line["ref"] == reply.client_ref:
                return DeliveryResult(external_id=line["id"])
        return None
