"""Checks that run before a server or worker process accepts work."""

from django.core import checks
from django.core.management.base import SystemCheckError


def refuse_unsafe_database() -> None:
    """Run the database checks (RLS role) and stop the process when one fails."""
    errors = [
        message
        for message in checks.run_checks(
            databases=["default"], tags=[checks.Tags.database]
        )
        if message.is_serious()
    ]
    if errors:
        raise SystemCheckError("\n".join(str(error) for error in errors))
