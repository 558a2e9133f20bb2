"""The care core's rows; `core` holds conversations and messages, `performance`
the facts and rollups reports read."""

from helpdesk.models.core import (
    Contact,
    Conversation,
    ConversationTag,
    Event,
    EventCounter,
    FollowerBand,
    Identity,
    Message,
    NoReplyReason,
    Note,
    SavedReply,
    SlaKind,
    SlaLane,
    Tag,
    agent_reference,
)
from helpdesk.models.performance import (
    ROLLUP_COUNTERS,
    ROLLUP_DIMENSIONS,
    CareFact,
    ReportBucket,
    ReportRollup,
    SimulationRun,
)
from helpdesk.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ROLLUP_COUNTERS",
    "ROLLUP_DIMENSIONS",
    "CareFact",
    "Contact",
    "Conversation",
    "ConversationTag",
    "Event",
    "EventCounter",
    "FollowerBand",
    "Identity",
    "Message",
    "NoReplyReason",
    "Note",
    "ReportBucket",
    "ReportRollup",
    "SavedReply",
    "SimulationRun",
    "SlaKind",
    "SlaLane",
    "Tag",
    "WebhookDelivery",
    "WebhookEndpoint",
    "agent_reference",
]
