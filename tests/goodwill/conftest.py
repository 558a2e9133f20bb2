"""The care core's fixtures (fake platforms, captured deliveries, an account)."""

from tests.helpdesk.conftest import (  # noqa: F401 - fixtures
    account,
    delivery_queue,
    fake_platforms,
)
