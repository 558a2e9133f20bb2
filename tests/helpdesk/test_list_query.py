"""The inbox's filter and the detail's `include` validated once per shape
(helpdesk.api_output.validated_query): the same data and the same errors as
validating every time (validated_input), a fresh copy each call."""

import pytest
from django.http import QueryDict
from rest_framework.exceptions import ValidationError

from helpdesk import api_output
from helpdesk.api import ConversationDetailApi, ConversationListApi
from helpdesk.api_output import validated_input, validated_query

FILTER = ConversationListApi.ConversationFilter
DETAIL = ConversationDetailApi.DetailInput

QUERIES = [
    "",
    "status=open",
    "status=all&brand=3&account=9&platform=x&origin=mention",
    "sentiment=negative&tag=vip&assignee=me&spreading=true&language=de",
    "assignee=none&language=unknown&spreading=0",
    "status=open&cursor=abc&page_size=5",
    "status=open&status=pending",  # the last one counts, as for DRF
    "brand=%20%2B7",
]
INVALID = [
    "status=closed",
    "brand=0",
    "brand=x",
    "assignee=someone",
    "tag=" + "x" * 61,
    "language=xx",
    "spreading=maybe",
]


def _fresh() -> None:
    api_output._queries.__dict__.clear()


@pytest.mark.parametrize("text", QUERIES)
def test_the_filter_gives_validated_inputs_data(text: str) -> None:
    _fresh()
    query = QueryDict(text)
    expected = dict(validated_input(FILTER, query))

    first = validated_query(FILTER, query)
    again = validated_query(FILTER, QueryDict(text))

    assert first == expected
    assert again == expected
    assert again is not first


@pytest.mark.parametrize("text", INVALID)
def test_an_invalid_filter_raises_drfs_error_every_time(text: str) -> None:
    _fresh()
    query = QueryDict(text)
    with pytest.raises(ValidationError) as expected:
        validated_input(FILTER, query)

    for _ in range(2):
        with pytest.raises(ValidationError) as raised:
            validated_query(FILTER, query)
        assert raised.value.detail == expected.value.detail
    assert api_output._queries.answers == {}


def test_only_the_filters_own_parameters_make_a_shape() -> None:
    _fresh()
    validated_query(FILTER, QueryDict("status=open&cursor=a"))
    validated_query(FILTER, QueryDict("status=open&cursor=b&page_size=3"))
    validated_query(FILTER, QueryDict("status=pending"))

    assert len(api_output._queries.answers) == 2


def test_include_is_a_new_set_each_time() -> None:
    _fresh()
    query = QueryDict("include=messages,notes")
    first = validated_query(DETAIL, query)
    first["include"].add("spoiled")

    again = validated_query(DETAIL, query)

    assert again == {"include": {"messages", "notes"}}
    assert dict(validated_input(DETAIL, query)) == again


def test_shapes_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh()
    monkeypatch.setattr(api_output, "_QUERY_SHAPES", 3)
    for brand in range(1, 7):
        assert validated_query(FILTER, QueryDict(f"brand={brand}"))["brand"] == brand

    assert len(api_output._queries.answers) == 3
    assert validated_query(FILTER, QueryDict("brand=6"))["brand"] == 6
