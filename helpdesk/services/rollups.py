"""Hourly rollups of care facts (R9): counters and mergeable histograms.

Owned by the rollups work of issue 11; the signatures below are the contract the
SLA engine calls (inside the transaction of the change).
"""

from helpdesk.models import CareFact, Conversation, Message


def apply_fact(fact: CareFact) -> None:
    """Add one just-created fact to its rollup row and histogram cells."""
    raise NotImplementedError


def count_inbound(conversation: Conversation, message: Message) -> None:
    """Count one inbound customer message in its hour's rollup row."""
    raise NotImplementedError


def count_reply(message: Message, *, move_to_private: bool) -> None:
    """Count one queued public reply or move to private for its agent."""
    raise NotImplementedError
