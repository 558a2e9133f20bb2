"""Output serializers built once per thread and reused for every response.

`SomeOutput(instance).data` builds the serializer's fields on every call: for a
ModelSerializer that is a walk over the model's fields (field classes, kwargs,
validators) before the first value is read. That was 0.5-0.7 ms of CPU for one
message on the bench machine, against 30 µs to represent it with fields built
once; 25 inbox rows went from 3.1 to 1.8 ms. The representation is the same code
(`to_representation`), so the output is identical.

A serializer instance is not safe to share between threads while it is given a
context, so each thread keeps its own (request threads are long-lived:
helpdesk/asgi_handler.py). Only output serializers whose `to_representation`
reads nothing from the instance but `context` may be used here.

Each serializer's fields are also planned once (`_Plan`): a field of a plain
kind (integer, text, boolean, float, choice, date-time, a method field, a nested
serializer) reads its attribute with one `attrgetter` and converts a value of the
type it expects the way the field's `to_representation` does; a value of another
type (a model's TextChoices member, a big integer, a URL) is given to the field's
`to_representation` as read, unless it is callable (`Field.get_attribute` may
call it: then the field's own `get_attribute` runs); a field that reads its
attribute its own way (relations, listed serializers) always goes through DRF,
and a row whose attributes raise (a missing attribute, an object that does not
exist) is represented by `Serializer.to_representation` itself, so the output
and the errors are DRF's. A serializer that overrides
`to_representation` is never planned. The inbox list's 25 rows: 1.86 ms of CPU
with DRF's loop, 0.60 ms planned (same process, alternating; the cases compared
value for value are in tests/helpdesk/test_api_output_plan.py).
"""

import operator
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from django.conf import settings
from django.http import HttpResponse, QueryDict
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework import fields as drf_fields
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils import encoders
from rest_framework.utils import json as drf_json

from helpdesk.parsers import JSONParser

_built = threading.local()

_SKIP = object()  # a field DRF would leave out (SkipField)
JSON_MEDIA_TYPE = "application/json"

# A step: (instance, time zone) -> the field's representation, or _SKIP.
Step = Callable[[Any, tzinfo | None], Any]


def _drf_step(field: drf_fields.Field[Any, Any, Any, Any]) -> Step:
    """The field as Serializer.to_representation treats it."""

    def step(instance: Any, tz: tzinfo | None) -> Any:
        try:
            attribute = field.get_attribute(instance)
        except SkipField:
            return _SKIP
        check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
        return None if check is None else field.to_representation(attribute)

    return step


def _iso(value: datetime, tz: tzinfo) -> str:
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _field_step(field: drf_fields.Field[Any, Any, Any, Any]) -> Step:
    """A fast step for a field of a plain kind; DRF's own for any other."""
    kind = type(field)
    slow = _drf_step(field)
    if kind is serializers.SerializerMethodField:
        method_name = field.method_name  # type: ignore[attr-defined]
        parent = field.parent
        return lambda instance, tz: getattr(parent, method_name)(instance)
    attrs = field.source_attrs
    if not attrs:  # source="*"
        return slow
    get = operator.attrgetter(".".join(attrs))
    if isinstance(field, serializers.Serializer) and not isinstance(
        field, serializers.ListSerializer
    ):
        nested = _plan(field)
        if nested is None:
            return slow

        def nested_step(instance: Any, tz: tzinfo | None) -> Any:
            value = get(instance)
            if value is None:
                return None
            return nested.row(value, tz)

        return nested_step
    if isinstance(field, serializers.BaseSerializer) or (
        kind.get_attribute is not drf_fields.Field.get_attribute
    ):
        return slow  # a listed serializer, or a field that reads its own way
    represent = field.to_representation

    def given(instance: Any, tz: tzinfo | None, value: Any) -> Any:
        # A value read (not None) that the step does not convert itself: what
        # Field.get_attribute gives for it goes to the field's to_representation
        # unread again; a callable, which get_attribute may call, goes to DRF.
        if callable(value):
            return slow(instance, tz)
        return represent(value)

    # int(value), str(value), the boolean sets, float(value): the value itself
    # when it already has the type (also for a subclass that converts the same
    # way, such as URLField; BigIntegerField converts its own way).
    simple: dict[Any, type] = {
        serializers.IntegerField.to_representation: int,
        serializers.CharField.to_representation: str,
        serializers.BooleanField.to_representation: bool,
        serializers.FloatField.to_representation: float,
    }
    expected = simple.get(kind.to_representation)
    if expected is not None:

        def simple_step(instance: Any, tz: tzinfo | None) -> Any:
            value = get(instance)
            if value is None or type(value) is expected:
                return value
            return given(instance, tz, value)

        return simple_step
    if kind is serializers.ChoiceField:
        choices = field.choice_strings_to_values  # type: ignore[attr-defined]

        def choice_step(instance: Any, tz: tzinfo | None) -> Any:
            value = get(instance)
            if value is None:
                return None
            if type(value) is str:
                return choices.get(value, value) if value else value
            return given(instance, tz, value)  # a model's TextChoices member

        return choice_step
    if (
        kind is serializers.DateTimeField
        and "format" not in field.__dict__
        and "timezone" not in field.__dict__
    ):

        def time_step(instance: Any, tz: tzinfo | None) -> Any:
            value = get(instance)
            if value is None:
                return None
            if (
                tz is not None
                and type(value) is datetime
                and value.utcoffset() is not None
            ):
                return _iso(value, tz)
            return given(instance, tz, value)

        return time_step

    def other_step(instance: Any, tz: tzinfo | None) -> Any:
        value = get(instance)
        if value is None:
            return None
        return given(instance, tz, value)

    return other_step


class _Plan:
    """One serializer's readable fields as steps (see the module's docstring)."""

    __slots__ = ("serializer", "steps")

    def __init__(self, serializer: serializers.Serializer[Any]) -> None:
        self.serializer = serializer
        self.steps: list[tuple[str, Step]] = [
            (str(field.field_name), _field_step(field))
            for field in serializer._readable_fields
        ]

    def row(self, instance: Any, tz: tzinfo | None) -> dict[str, Any]:
        try:
            data: dict[str, Any] = {}
            for name, step in self.steps:
                value = step(instance, tz)
                if value is not _SKIP:
                    data[name] = value
            return data
        except Exception:
            # DRF's loop answers (or raises) as it always did.
            representation: dict[str, Any] = self.serializer.to_representation(instance)
            return representation


def _plan(serializer: serializers.Serializer[Any]) -> "_Plan | None":
    if (
        type(serializer).to_representation
        is not serializers.Serializer.to_representation
    ):
        return None
    return _Plan(serializer)


def _time_zone() -> tzinfo | None:
    """The zone DateTimeField would use now; None where the fast step does not
    apply (no time zones, or a format other than ISO 8601)."""
    output_format = api_settings.DATETIME_FORMAT
    if not settings.USE_TZ or not isinstance(output_format, str):
        return None
    if output_format.lower() != ISO_8601:
        return None
    return timezone.get_current_timezone()


def _serializer(
    serializer_class: type[serializers.Serializer[Any]], context: dict[str, Any] | None
) -> tuple[serializers.Serializer[Any], _Plan | None]:
    cache: dict[type[Any], tuple[serializers.Serializer[Any], _Plan | None]] | None = (
        getattr(_built, "serializers", None)
    )
    if cache is None:
        cache = _built.serializers = {}
    built = cache.get(serializer_class)
    if built is None:
        serializer = serializer_class()
        built = cache[serializer_class] = (serializer, _plan(serializer))
    built[0]._context = context or {}
    return built


def output(
    serializer_class: type[serializers.Serializer[Any]],
    instance: Any,
    *,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What `serializer_class(instance, context=context).data` holds."""
    serializer, plan = _serializer(serializer_class, context)
    try:
        if plan is not None:
            return plan.row(instance, _time_zone())
        data: dict[str, Any] = serializer.to_representation(instance)
        return data
    finally:
        serializer._context = {}


def outputs(
    serializer_class: type[serializers.Serializer[Any]],
    instances: Iterable[Any],
    *,
    context: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """What `serializer_class(instances, many=True, context=context).data` holds."""
    serializer, plan = _serializer(serializer_class, context)
    try:
        if plan is not None:
            row, tz = plan.row, _time_zone()
            return [row(item, tz) for item in instances]
        return [serializer.to_representation(item) for item in instances]
    finally:
        serializer._context = {}


_inputs = threading.local()


def validated_input(
    serializer_class: type[serializers.Serializer[Any]],
    data: Any,
    *,
    context: dict[str, Any] | None = None,
) -> Any:
    """What `s = serializer_class(data=data, context=context);
    s.is_valid(raise_exception=True); s.validated_data` gives, the same errors
    included, with the serializer's fields built once per thread (a new input
    serializer deep-copies and binds every declared field: about 0.3 ms of a
    create's CPU for the channel push and its author). Only for plain input
    serializers: no instance, no partial updates, nothing kept between calls."""
    cache: dict[type[Any], serializers.Serializer[Any]] | None = getattr(
        _inputs, "serializers", None
    )
    if cache is None:
        cache = _inputs.serializers = {}
    serializer = cache.get(serializer_class)
    if serializer is None:
        serializer = cache[serializer_class] = serializer_class()
    serializer._context = context or {}
    try:
        return serializer.run_validation(data)
    except ValidationError as error:
        # is_valid(raise_exception=True): the detail as `errors` shapes it.
        serializer._errors = error.detail  # type: ignore[attr-defined]
        raise ValidationError(serializer.errors) from None
    finally:
        serializer._context = {}
        serializer.__dict__.pop("_errors", None)


_queries = threading.local()
_QUERY_SHAPES = 256  # validated answers kept per thread, at most
_QUERY_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def validated_query(
    serializer_class: type[serializers.Serializer[Any]], query: QueryDict
) -> dict[str, Any]:
    """`validated_input(serializer_class, query)` for a query string's filter
    whose validation reads nothing but its own fields' values (no context, no
    database, no `validate` that looks elsewhere): the answer for the same
    values of those fields is kept per thread (up to `_QUERY_SHAPES` of them)
    and a copy of it given. Other parameters (a cursor, a page size) are not
    the filter's and do not count. An invalid query raises DRF's error every
    time, as before. The inbox's filter took about 0.1 ms per request."""
    cache: dict[tuple[Any, ...], dict[str, Any]] | None = getattr(
        _queries, "answers", None
    )
    if cache is None:
        cache = _queries.answers = {}
    names = _QUERY_FIELDS.get(serializer_class)
    if names is None:
        names = _QUERY_FIELDS[serializer_class] = tuple(serializer_class().fields)
    key = (
        serializer_class,
        *(tuple(query.getlist(name)) if name in query else None for name in names),
    )
    known = cache.get(key)
    if known is None:
        known = dict(validated_input(serializer_class, query))
        if len(cache) < _QUERY_SHAPES:
            cache[key] = known
    return {
        name: set(value) if type(value) is set else value
        for name, value in known.items()
    }


def request_json(request: Request) -> Any:
    """What `request.data` gives for the usual JSON body, read without DRF's
    parser negotiation and stream reader: a request whose content type is
    exactly `application/json`, with a body, parsed by this project's JSON
    parser alone, is its body decoded and read by DRF's strict `json.loads`
    (what `JSONParser.parse` does through a codec reader). Anything else, and
    any body that does not parse, goes to `request.data`, so its data and
    errors (400 with DRF's message, 415) are DRF's own."""
    django_request = request._request
    parsers = request.parsers or ()
    parser = parsers[0] if len(parsers) == 1 else None
    if (
        django_request.META.get("CONTENT_TYPE") == JSON_MEDIA_TYPE
        and isinstance(parser, JSONParser)
        and type(parser) is JSONParser
        and parser.strict
    ):
        try:
            if int(django_request.META.get("CONTENT_LENGTH") or 0) > 0:
                encoding = request.parser_context["encoding"]
                return drf_json.loads(django_request.body.decode(encoding))
        except Exception:  # noqa: S110 - DRF's own path answers below
            pass
    return request.data


# The UTF-8 of U+2028 and U+2029, which DRF's JSONRenderer writes escaped.
_LINE_SEPARATORS = (
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
_INT_RANGE = range(-(2**63), 2**64)  # what orjson writes; DRF writes any int


def orjson_float(value: float) -> bool:
    """Whether orjson writes this float as json.dumps does (`float.__repr__`):
    zero, and finite values from 1e-4 up to 1e16, where both write the
    shortest digits without an exponent (below 1e-4 orjson writes `0.00001`
    where json writes `1e-05`; NaN and infinities DRF refuses)."""
    magnitude = abs(value)
    return magnitude == 0.0 or 1e-4 <= magnitude < 1e16


def plain(value: Any, *, floats: bool = False) -> bool:
    """Whether orjson writes `value` as DRF's JSONRenderer does (json.dumps,
    compact, not ASCII-only): strings, ints in orjson's range, booleans, None,
    with `floats` the floats both write alike (`orjson_float`), and dicts with
    string keys and lists of those. Another float (orjson writes `1e-5` where
    json writes `1e-05`), a date or anything DRF's encoder converts is not."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return value in _INT_RANGE
    if kind is float:
        return floats and orjson_float(value)
    if kind is dict:
        return all(
            type(key) is str and plain(item, floats=floats)
            for key, item in value.items()
        )
    if kind is list:
        return all(plain(item, floats=floats) for item in value)
    return False


def plain_json_negotiated(request: Request) -> bool:
    """The request negotiated DRF's JSONRenderer with no media-type parameter
    (no `indent`), and DRF's settings are the compact, non-ASCII JSON."""
    return (
        type(getattr(request, "accepted_renderer", None)) is JSONRenderer
        and getattr(request, "accepted_media_type", None) == JSONRenderer.media_type
        and JSONRenderer.compact
        and not JSONRenderer.ensure_ascii
        and JSONRenderer.encoder_class is encoders.JSONEncoder
    )


def _written(body: Any, option: int = 0) -> bytes:
    content = orjson.dumps(body, option=option)
    for raw, escaped in _LINE_SEPARATORS:
        if raw in content:
            content = content.replace(raw, escaped)
    return content


def json_answer(request: Request, body: dict[str, Any], code: int) -> HttpResponse:
    """`Response(body, status=code)`: when the request negotiated DRF's
    JSONRenderer plainly (`plain_json_negotiated`) and the body holds only
    plain values (`plain`), the same bytes and headers written by orjson in an
    HttpResponse, without the Response, its renderer context and rendering;
    otherwise the Response itself."""
    if plain_json_negotiated(request) and plain(body):
        return HttpResponse(
            _written(body), status=code, content_type=JSONRenderer.media_type
        )
    return Response(body, status=code)


def utc_output() -> bool:
    """Whether DRF's DateTimeField writes an aware time now as
    `value.astimezone(UTC).isoformat()` with `Z` for `+00:00` (ISO 8601 output,
    time zones on, the current zone UTC): then orjson writes a datetime whose
    tzinfo is `datetime.UTC` the same way (OPT_UTC_Z)."""
    tz = _time_zone()
    return tz is UTC or (isinstance(tz, ZoneInfo) and tz.key == "UTC")


def written_answer(request: Request, body: Any, code: int) -> HttpResponse | None:
    """`body` written by orjson as DRF's JSONRenderer would write its
    serializers' output, or None when the request did not negotiate DRF's
    JSONRenderer plainly (`plain_json_negotiated`) or orjson cannot write a
    value (an int out of its range): the caller then answers DRF's way.

    The caller vouches for the values: what `_plain` allows, and datetimes
    whose tzinfo is `datetime.UTC` where DRF would write the field's time,
    while `utc_output()` holds (orjson writes them with `Z`, as DRF does)."""
    if not plain_json_negotiated(request):
        return None
    try:
        content = _written(body, orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return None
    return HttpResponse(content, status=code, content_type=JSONRenderer.media_type)
