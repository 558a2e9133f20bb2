"""helpdesk.services.inbound._identity_of (the push's author read with the
channel, or just inserted) builds the stored identity `Identity(...)` with its
state set would be: the same values in the same order, not adding, database
"default", nothing cached; through Django's own path while an init signal has
a receiver, and through build_row when a column is missing."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db.models import Model
from django.db.models.signals import post_init, pre_init

from helpdesk.models import Identity
from helpdesk.services import inbound
from tests.helpdesk.test_inbound_rows import recorded_inits

AT = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


def columns() -> dict[str, Any]:
    return {
        "id": 7,
        "contact_id": 9,
        "handle": "@a",
        "display_name": "A",
        "followers": 12,
        "profile_url": "",
        "created_at": AT,
    }


def expected() -> Identity:
    row = Identity(tenant_id=1, platform="api", external_id="author-1", **columns())
    row._state.adding = False
    row._state.db = "default"
    return row


def state(row: Model) -> tuple[list[tuple[str, Any]], str | None, bool, dict[str, Any]]:
    values = [(name, value) for name, value in vars(row).items() if name != "_state"]
    return values, row._state.db, row._state.adding, dict(row._state.fields_cache)


def test_the_identity_is_the_one_django_builds() -> None:
    got = inbound._identity_of(1, "api", "author-1", columns())
    assert type(got) is Identity
    assert state(got) == state(expected())
    assert got.tenant_id == 1
    assert got.contact_id == 9
    assert got.external_id == "author-1"


def test_init_is_not_run_without_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    built = recorded_inits(monkeypatch)
    inbound._identity_of(1, "api", "author-1", columns())
    assert built == []


@pytest.mark.parametrize("signal", [pre_init, post_init])
def test_with_an_init_receiver_django_builds_it(signal: Any) -> None:
    seen: list[Any] = []

    def listen(sender: Any, **kwargs: Any) -> None:
        seen.append(sender)

    signal.connect(listen, sender=Identity)
    try:
        got = inbound._identity_of(1, "api", "author-1", columns())
    finally:
        signal.disconnect(listen, sender=Identity)
    assert seen == [Identity]
    assert state(got) == state(expected())


def test_a_missing_column_goes_through_build_row() -> None:
    values = columns()
    del values["profile_url"]
    got = inbound._identity_of(1, "api", "author-1", values)
    row = Identity(tenant_id=1, platform="api", external_id="author-1", **values)
    row._state.adding = False
    row._state.db = "default"
    assert state(got) == state(row)
    assert got.profile_url == ""  # the field's default
