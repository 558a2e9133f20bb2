"""Errors raised by the tenancy layer."""


class TenantContextMissing(RuntimeError):
    """A tenant-scoped query ran with no tenant open (fail closed)."""


class TenantContextConflict(RuntimeError):
    """A tenant context was opened inside another tenant's context."""


class TenantMismatch(RuntimeError):
    """A row of one tenant was written inside another tenant's context."""


class WorkspaceError(Exception):
    """A workspace action was refused; the message tells the user why."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvitationInvalid(WorkspaceError):
    """The invitation link is forged, expired, revoked or already used."""
