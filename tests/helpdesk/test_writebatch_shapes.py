"""helpdesk.services.writebatch._Merged takes its per-field checks from one shape
per INSERT head and vendor (worked out once): the same lists the per-field
functions give, shared by every merged INSERT of that head, and a merged INSERT
leaving its JSON document does not change another's."""

from typing import Any

from helpdesk.models import CareFact, Conversation
from helpdesk.services import writebatch
from helpdesk.services.bulkrows import json_checks


def merged(model: Any, vendor: str) -> writebatch._Merged:
    plan = writebatch._plan(model, True, vendor)
    return writebatch._Merged(0, model, list(plan.fields), plan.head, vendor)


def test_the_shape_is_the_per_field_answers() -> None:
    for model in (Conversation, CareFact):
        plan = writebatch._plan(model, True, "postgresql")
        fields = list(plan.fields)
        got = merged(model, "postgresql")
        as_is = [writebatch._as_is(f) for f in fields]
        assert got.checks == json_checks(fields)
        assert got.checks is not None
        assert got.as_is == as_is
        assert got.as_is_exact == [writebatch._AS_IS_EXACT.get(c) for c in as_is]
        assert str in got.as_is_exact
        assert None in got.as_is_exact
        sqlite = merged(model, "sqlite")
        assert sqlite.checks is None
        assert sqlite.as_is == [None] * len(fields)
        assert sqlite.as_is_exact == [None] * len(fields)


def test_leaving_the_json_document_leaves_other_inserts_alone() -> None:
    one, two = merged(Conversation, "postgresql"), merged(Conversation, "postgresql")
    assert one.as_is is two.as_is  # worked out once
    before = list(two.checks or [])
    one.keep_values_list()
    assert one.checks is None
    assert two.checks == before
    assert len(before) == len(two.fields)
    assert merged(Conversation, "postgresql").checks == before
