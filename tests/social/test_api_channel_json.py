"""access_api_channel reads its JSON values (the brand's JSON columns, the SLA
annotations) with orjson, and falls back to the field's own json.loads for
whatever orjson refuses: every value comes out as Django's JSONField makes it."""

import json
from typing import Any

import pytest
from django.db.models import JSONField

from social.api_channel import (
    _API_CHANNEL,
    _json_loaded,
    _json_value,
    access_api_channel,
    create_api_channel,
)
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of

AWKWARD: list[Any] = [
    {"a": 1, "b": [True, False, None], "c": {"d": "e"}},
    [2**70, -(2**70), 2**63, -(2**63) - 1, 1.5, -0.0, 1e-05, 123456789.125],
    'text with \u2028 and \U0001f600 and \\ and "',
    [],
    {},
    0,
    None,
    [[[[["deep"]]]]],
]


def reference(text: Any) -> Any:
    field: Any = JSONField()
    return field.from_db_value(text, None, None)


@pytest.mark.parametrize(
    "text",
    [json.dumps(value) for value in AWKWARD]
    + [
        '"\\ud800 lone"',  # orjson refuses a lone surrogate; json.loads takes it
        "NaN",  # json.loads takes it, orjson refuses it
        "[" * 1100 + "]" * 1100,  # deeper than orjson's limit
        "not json",  # both refuse: the text itself, as Django answers
        "123456789012345678901234567890",
        "[999999999999999999, -999999999999999999, 18446744073709551615]",
        '{"n": 0.12345678901234567890123, "s": "1234567890123456789"}',
        '{"k": 1, "k": 2}',
    ],
)
def test_a_value_converts_as_jsonfields_own(text: str) -> None:
    field: Any = JSONField()
    convert = _json_loaded([field.from_db_value])[0]
    assert convert is not field.from_db_value
    got = convert(text, None, None)
    expected = reference(text)
    assert repr(got) == repr(expected)
    assert got == expected or (got != got and expected != expected)


def test_none_and_values_that_are_not_text_go_to_the_field() -> None:
    convert = _json_value(JSONField().from_db_value)
    assert convert(None, None, None) is None
    assert convert(b'{"a": 1}', None, None) == {"a": 1}
    with pytest.raises(TypeError, match="not dict"):
        convert({"a": 1}, None, None)
    with pytest.raises(TypeError, match="not dict"):
        reference({"a": 1})


def test_a_field_with_its_own_decoder_or_loader_is_left_alone() -> None:
    class Decoded(json.JSONDecoder):
        pass

    class Own(JSONField):
        def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
            return ("own", value)

    with_decoder = JSONField(decoder=Decoded)
    own = Own()
    other = str.upper
    converters = [with_decoder.from_db_value, own.from_db_value, other]
    assert _json_loaded(converters) == converters


@pytest.mark.django_db
@pytest.mark.parametrize("value", [*AWKWARD[:3], ["x"], {"nested": [2**70, 1.5]}])
def test_the_brands_json_columns_read_as_the_querysets(
    tenant: Tenant, owner: User, value: Any
) -> None:
    with tenant_context(tenant):
        member = membership_of(tenant, owner)
        brand = Brand.objects.get()
        Brand.objects.filter(pk=brand.pk).update(
            signature_rules=value, deflection_phrases=value, business_hours=value
        )
        channel = create_api_channel(member, brand=brand, name="Chat")
        expected = _API_CHANNEL.first(channel.pk)
        assert expected is not None
        got = access_api_channel(member, channel.pk)
    for name in ("signature_rules", "deflection_phrases", "business_hours"):
        assert repr(getattr(got.brand, name)) == repr(getattr(expected.brand, name))
        assert getattr(got.brand, name) == value
    assert isinstance(got, SocialAccount)
    assert got.preloaded_holidays == expected.preloaded_holidays  # type: ignore[attr-defined]
    assert got.preloaded_sla_policy == expected.preloaded_sla_policy  # type: ignore[attr-defined]
