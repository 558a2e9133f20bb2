"""helpdesk/api_output.py's planned fields give DRF's output, value for value.

The plan reads a plain field's attribute with one attrgetter and converts values of
the expected type itself; everything else goes through DRF. These tests compare it
with a fresh serializer's `.data` on real conversations in many states (and the
rendered bytes), under another time zone, and on objects built to reach each
fallback: other types, missing attributes, callables, nested and listed fields.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from helpdesk.api import ConversationOutput, MessageOutput, NoteOutput
from helpdesk.api_output import output, outputs
from helpdesk.models import Conversation, ConversationTag, Message, Note, Tag
from helpdesk.selectors import conversation_rows, conversation_tags
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, receive

NOW = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)


def rendered(data: Any) -> bytes:
    return JSONRenderer().render(data)


@pytest.fixture
def varied(tenant: Tenant, owner: User, account: SocialAccount) -> list[int]:
    """Conversations in the states the list shows: assigned and tagged, resolved,
    paused, breached, due soon, spreading, marked no-reply, with a language."""
    ids = [
        receive(account, item(text=f"Message {n}", author=f"cust-{n}")).conversation.pk
        for n in range(7)
    ]
    with tenant_context(tenant):
        bags = Tag.objects.create(name="bags")
        late = Tag.objects.create(name="late")
        first, resolved, paused, breached, soon, spreading, no_reply = ids
        Conversation.objects.filter(pk=first).update(
            assignee=owner, priority=7, language="fr", sentiment="negative"
        )
        for tag in (late, bags):
            ConversationTag.objects.create(conversation_id=first, tag=tag)
        Conversation.objects.filter(pk=resolved).update(
            status=Conversation.Status.RESOLVED, resolved_at=NOW, sla_due_at=None
        )
        Conversation.objects.filter(pk=paused).update(
            status=Conversation.Status.PENDING,
            sla_kind="first",
            sla_run_started_at=None,
        )
        Conversation.objects.filter(pk=breached).update(
            sla_kind="first",
            sla_due_at=NOW - timedelta(hours=1),
            sla_breached_at=NOW - timedelta(minutes=59, microseconds=1),
        )
        Conversation.objects.filter(pk=soon).update(
            sla_kind="first",
            sla_due_at=timezone.now() + timedelta(hours=1),
            sla_due_soon_at=timezone.now() - timedelta(minutes=1),
        )
        Conversation.objects.filter(pk=spreading).update(
            engagement_total=1234,
            engagement_per_hour=1e-05,
            engagement_read_at=NOW,
            spreading_since=NOW,
        )
        Conversation.objects.filter(pk=no_reply).update(
            no_reply_reason="spam", no_reply_at=NOW, engagement_per_hour=12.5
        )
    return ids


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("zone", [None, "America/New_York", "Asia/Kolkata"])
def test_conversations_in_every_state_are_drfs_output(
    tenant: Tenant, owner: User, varied: list[int], zone: str | None
) -> None:
    with tenant_context(tenant), timezone.override(zone):
        rows = list(conversation_rows(membership_of(tenant, owner)).order_by("id"))
        plain = list(Conversation.objects.order_by("id"))  # no tag names loaded
        tags = conversation_tags([row.pk for row in plain])

        for instances in (rows, plain):
            fresh: Any = ConversationOutput(
                instances, many=True, context={"tags": tags}
            ).data
            for _ in range(2):  # planned the first time, reused the second
                planned = outputs(ConversationOutput, instances, context={"tags": tags})
                assert planned == fresh
                assert rendered(planned) == rendered(fresh)
            one = output(ConversationOutput, instances[0], context={"tags": tags})
            assert one == fresh[0]

    assert len(rows) == 7
    by_id = {row["id"]: row for row in fresh}
    first = by_id[varied[0]]
    assert first["tags"] == ["bags", "late"]
    assert first["assignee"] == {"id": owner.pk, "name": owner.public_name}
    assert {row["sla_state"] for row in fresh} >= {"none", "paused", "breached"}
    assert by_id[varied[5]]["engagement_per_hour"] == 1e-05
    if zone is None:
        assert by_id[varied[1]]["resolved_at"] == "2026-12-06T08:00:00.123456Z"
    else:
        assert not by_id[varied[1]]["resolved_at"].endswith("Z")


@pytest.mark.django_db(transaction=True)
def test_messages_and_notes_are_drfs_output(
    tenant: Tenant, owner: User, account: SocialAccount
) -> None:
    conversation = receive(account, item(text="Où est mon sac ?")).conversation
    with tenant_context(tenant):
        Message.objects.create(
            tenant_id=tenant.pk,
            conversation=conversation,
            direction=Message.Direction.OUT,
            visibility=Message.Visibility.PUBLIC,
            text="We are on it\u2028now",
            author_agent=owner,
        )
        Note.objects.create(
            tenant_id=tenant.pk, conversation=conversation, author=owner, text="VIP"
        )
        Note.objects.create(tenant_id=tenant.pk, conversation=conversation, text="x")
        messages = list(
            Message.objects.select_related("author_identity", "author_agent").order_by(
                "id"
            )
        )
        notes = list(Note.objects.select_related("author").order_by("id"))

        fresh_messages: Any = MessageOutput(messages, many=True).data
        fresh_notes: Any = NoteOutput(notes, many=True).data
        assert outputs(MessageOutput, messages) == fresh_messages
        assert rendered(outputs(MessageOutput, messages)) == rendered(fresh_messages)
        assert outputs(NoteOutput, notes) == fresh_notes

    assert [m["author"]["type"] for m in fresh_messages] == ["customer", "agent"]
    assert [n["author"] for n in fresh_notes] == [
        {"id": owner.pk, "name": owner.public_name},
        None,
    ]


class Person(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField(source="public_name")


class Probe(serializers.Serializer[Any]):
    """A field of every kind the plan knows, and some it leaves to DRF."""

    number = serializers.IntegerField()
    text = serializers.CharField()
    flag = serializers.BooleanField()
    ratio = serializers.FloatField()
    choice = serializers.ChoiceField(choices=[(1, "one"), ("b", "bee"), ("", "none")])
    at = serializers.DateTimeField()
    day = serializers.DateTimeField(format="%Y-%m-%d")
    local = serializers.DateTimeField(default_timezone=UTC)
    email = serializers.EmailField()
    nested = Person(allow_null=True)
    listed = Person(many=True)
    dotted = serializers.IntegerField(source="nested.id", required=False)
    optional = serializers.CharField(required=False)
    nullable = serializers.CharField(allow_null=True)
    whole = serializers.SerializerMethodField()
    star = serializers.CharField(source="*")
    called = serializers.CharField(source="shout")
    big = serializers.BigIntegerField()
    big_text = serializers.BigIntegerField(coerce_to_string=True)
    plain = serializers.ReadOnlyField()
    link = serializers.URLField()
    state = serializers.ChoiceField(choices=Conversation.Status.choices)

    def get_whole(self, instance: Any) -> str:
        return f"{self.context.get('prefix', '')}{instance.text}"


class Row(SimpleNamespace):
    def shout(self) -> str:
        return str(self.text).upper()

    def __str__(self) -> str:  # CharField(source="*")
        return f"row {self.text}"


def person(pk: int) -> Any:
    return SimpleNamespace(id=pk, public_name=f"Agent {pk}")


def rows() -> list[Any]:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    base: dict[str, Any] = {
        "number": 3,
        "text": "hi",
        "flag": True,
        "ratio": 0.5,
        "choice": "b",
        "at": at,
        "day": at,
        "local": at,
        "email": "a@b.example",
        "nested": person(4),
        "listed": [person(5), person(6)],
        "optional": "here",
        "nullable": None,
        "big": 2**40,
        "big_text": 2**40,
        "plain": {"kept": [1, "as is"]},
        "link": "https://shop.example/o/1",
        "state": Conversation.Status.OPEN,  # a TextChoices member, as models hold
    }
    others: list[dict[str, Any]] = [
        {},
        # Values of other types than the field expects: DRF converts them.
        {"number": Decimal("7"), "text": 12, "flag": "yes", "ratio": 2, "choice": "1"},
        {"number": True, "flag": 0, "choice": "", "text": ""},
        {"at": datetime(2026, 1, 2, 3, 4, 5), "nested": None, "listed": []},  # noqa: DTZ001
        {"at": datetime(2026, 6, 1, 12, tzinfo=timezone.get_fixed_timezone(120))},
        {"at": "not a time", "nullable": "x"},
        # Other types again, and callables Field.get_attribute calls (or not).
        {"big": "12", "big_text": Decimal("3"), "plain": lambda: "called", "link": 5},
        {"state": "pending", "plain": Decimal("1.5"), "link": person},
        {"state": Conversation.Status.RESOLVED, "link": SimpleNamespace},
    ]
    made = []
    for change in others:
        values = {**base, **change}
        row = Row(**values)
        made.append(row)
    missing = Row(**base)
    del missing.optional  # required=False: DRF leaves the field out
    made.append(missing)
    no_nested = Row(**{**base, "nested": SimpleNamespace(id=9)})  # no public_name
    made.append(no_nested)
    return made


@pytest.mark.parametrize("zone", [None, "Europe/Paris"])
def test_every_kind_of_field_and_fallback_is_drfs_output(zone: str | None) -> None:
    context = {"prefix": ">"}
    with timezone.override(zone):
        for row in rows()[:-1]:
            fresh = Probe(row, context=context).data
            assert output(Probe, row, context=context) == fresh
            assert rendered(output(Probe, row, context=context)) == rendered(fresh)
        fresh_many: Any = Probe(rows()[:-1], many=True, context=context).data
        assert outputs(Probe, rows()[:-1], context=context) == fresh_many

    assert "optional" not in fresh_many[-1]
    assert fresh_many[1]["number"] == 7
    assert fresh_many[1]["text"] == "12"
    assert fresh_many[0]["whole"] == ">hi"
    assert fresh_many[0]["called"] == "HI"


def test_a_missing_attribute_raises_as_drf_does() -> None:
    broken = rows()[-1]
    with pytest.raises(AttributeError) as fresh:
        Probe(broken).data  # noqa: B018
    with pytest.raises(AttributeError) as planned:
        output(Probe, broken)
    assert str(planned.value) == str(fresh.value)


def test_a_serializer_with_its_own_representation_is_not_planned() -> None:
    class Own(Probe):
        def to_representation(self, instance: Any) -> Any:
            return {"own": instance.text}

    row = rows()[0]
    assert output(Own, row) == {"own": "hi"} == Own(row).data


class ModelProbe(serializers.ModelSerializer[Conversation]):
    class Meta:
        model = Conversation
        fields: ClassVar[list[str]] = ["id", "status", "priority", "created_at"]


def test_unsaved_instances_with_enum_values_are_drfs_output() -> None:
    row = Conversation(
        id=5, status=Conversation.Status.OPEN, priority=3, created_at=NOW
    )
    assert output(ModelProbe, row) == ModelProbe(row).data
    assert rendered(output(ModelProbe, row)) == rendered(ModelProbe(row).data)


@pytest.mark.django_db(transaction=True)
def test_the_list_rows_take_the_planned_steps_not_drfs_loop(
    tenant: Tenant, owner: User, varied: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpdesk.api_output import _Plan

    with tenant_context(tenant):
        rows = list(conversation_rows(membership_of(tenant, owner)).order_by("id"))
        expected: Any = ConversationOutput(rows, many=True).data
        serializer = ConversationOutput()
        plan = _Plan(serializer)

        def refuse(instance: Any) -> Any:
            raise AssertionError("fell back to Serializer.to_representation")

        monkeypatch.setattr(serializer, "to_representation", refuse)
        zone = timezone.get_current_timezone()
        assert [plan.row(row, zone) for row in rows] == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("query", ["status=all", "status=open&assignee=me"])
def test_the_list_with_its_columns_answers_as_with_whole_rows(
    tenant: Tenant,
    owner: User,
    varied: list[int],
    monkeypatch: pytest.MonkeyPatch,
    query: str,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from helpdesk import api
    from tests.api_clients import base, token_client

    client = token_client(tenant, owner, "read")

    def pages() -> tuple[list[Any], list[int]]:
        url: str | None = f"{base(tenant)}/conversations/?{query}&page_size=2"
        results: list[Any] = []
        statements: list[int] = []
        while url:
            with CaptureQueriesContext(connection) as seen:
                response = client.get(url)
            assert response.status_code == 200
            statements.append(len(seen.captured_queries))
            results.extend(response.json()["results"])
            url = response.json()["next"]
        return results, statements

    lean = pages()
    monkeypatch.setattr(api, "LIST_COLUMNS", None)
    whole = pages()

    assert lean == whole
    assert lean[0]
    assert all(count == lean[1][0] for count in lean[1])
