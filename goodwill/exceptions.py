"""Refusals of the goodwill services; the API's one handler maps them to HTTP."""

from typing import ClassVar

from helpdesk.exceptions import HelpdeskError


class PoolEmpty(HelpdeskError):
    """No code left to hand out (the last one went to a concurrent click)."""

    code: ClassVar[str] = "pool_empty"
    http_status: ClassVar[int] = 409


class GoodwillPrivateOnly(HelpdeskError):
    """A code goes only in a private reply: spectators must not see it."""

    code: ClassVar[str] = "goodwill_private_only"
    http_status: ClassVar[int] = 409


class GoodwillInvalid(HelpdeskError):
    """A field of a pool or claim is wrong (name taken, pool of another brand)."""

    code: ClassVar[str] = "invalid"


class CodeImportInvalid(HelpdeskError):
    """An import with malformed or duplicate codes; none of them was imported."""

    code: ClassVar[str] = "import_invalid"
