"""Domain errors of the care core. Each carries a stable code and a message that tells
the agent why and what to do instead. The REST API maps them to HTTP in one handler."""

from typing import ClassVar


class HelpdeskError(Exception):
    code: ClassVar[str] = "helpdesk_error"
    http_status: ClassVar[int] = 400

    def __init__(
        self, message: str, *, field: str | None = None, **details: object
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class ReplyInvalid(HelpdeskError):
    """Empty text, text over the platform's limit, or an unusable visibility."""

    code = "reply_invalid"


class ConversationResolved(HelpdeskError):
    code = "conversation_resolved"
    http_status = 409


class PrivateFirstRefused(HelpdeskError):
    """R2: a public conversation gets its first answer in public."""

    code = "public_first"
    http_status = 409


class PublicReplyLimitReached(HelpdeskError):
    """R3: the brand's public reply limit for this thread is used up."""

    code = "public_reply_limit"
    http_status = 409


class AnotherReplyPending(HelpdeskError):
    """R7: only one public answer per conversation may be in its hold at a time."""

    code = "reply_pending"
    http_status = 409


class PlatformRefuses(HelpdeskError):
    """The platform cannot do this (capability flags); the message says what can."""

    code = "platform_refuses"
    http_status = 409


class ReplyNeedsConfirmation(HelpdeskError):
    """Warnings the agent must confirm (near-duplicate, stale view); nothing sent."""

    code = "needs_confirmation"
    http_status = 409

    def __init__(self, warnings: dict[str, str]) -> None:
        super().__init__(" ".join(warnings.values()), warnings=warnings)
        self.warnings = warnings


class MessageNotEditable(HelpdeskError):
    """Undo, edit and retry need the message in a state that allows them."""

    code = "message_not_editable"
    http_status = 409


class InvalidTransition(HelpdeskError):
    code = "invalid_transition"
    http_status = 409
