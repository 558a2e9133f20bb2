"""REST API of the care core: conversations, messages, replies and notes.

One APIView per resource operation set, each with nested Input/Output serializers.
Views gate (TenantScopedApi + access_*), parse, call one service or selector and
serialize. Every write goes through the same services as the inbox pages, so the
care rules and their errors are the same for browsers and integrations.
"""

import re
from typing import Any, ClassVar

from django.http import Http404, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.access import (
    access_conversation,
    access_conversation_for_reply,
    access_conversation_read,
    access_message,
)
from helpdesk.api_output import (
    json_answer,
    output,
    outputs,
    plain,
    plain_json_negotiated,
    request_json,
    validated_input,
    validated_query,
    written_answer,
)
from helpdesk.compiled import Fetched
from helpdesk.inbox_compiled import read_inbox_page
from helpdesk.language import LANGUAGES
from helpdesk.list_output import writes_plainly, written_page, written_rows
from helpdesk.models import Conversation, Message, NoReplyReason, Note
from helpdesk.pagination import page_size, paginated
from helpdesk.selectors import (
    conversation_messages,
    conversation_notes,
    conversation_tags,
)
from helpdesk.services.breaches import sla_state
from helpdesk.services.conversations import UNSET, update_conversation
from helpdesk.services.no_reply import mark_no_reply
from helpdesk.services.notes import add_note
from helpdesk.services.replies import (
    cancel_scheduled_reply,
    edit_scheduled_reply,
    move_to_private,
    post_reply,
    retry_failed_message,
)
from social.models import Platform
from tenants.last_write import commit_with_last_write
from tenants.models import Membership
from tenants.permissions import TenantScopedApi


class PersonSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField(source="public_name")


class ConversationOutput(serializers.ModelSerializer[Conversation]):
    brand = serializers.SerializerMethodField()
    contact = serializers.SerializerMethodField()
    account_id = serializers.IntegerField(source="social_account_id", allow_null=True)
    assignee = PersonSerializer(allow_null=True)
    public_reply_limit = serializers.IntegerField(source="brand.public_reply_limit")
    tags = serializers.SerializerMethodField()
    channel_state = serializers.CharField(
        help_text="`public` or `private`: where the next reply goes by default."
    )
    sla_state = serializers.SerializerMethodField(
        help_text="`none`, `on_track`, `due_soon` (the last fifth of the target), "
        "`breached` or `paused` (pending, waiting on the customer)."
    )
    engagement_total = serializers.IntegerField(
        read_only=True,
        help_text="Reposts, likes, replies and quotes of the customer's public "
        "post, as last read from the platform (R13; 0 until read).",
    )
    engagement_per_hour = serializers.FloatField(
        read_only=True,
        help_text="Engagement gained per hour between the last two reads.",
    )
    engagement_read_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the engagement was read."
    )
    spreading_since = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Set while the conversation spreads: its engagement per hour "
        "reached the brand's `spreading_threshold` (it moved to the urgent lane, "
        "never ahead of another customer's breach). Null otherwise.",
    )

    class Meta:
        model = Conversation
        fields: ClassVar[list[str]] = [
            "id",
            "brand",
            "account_id",
            "platform",
            "origin",
            "status",
            "channel_state",
            "awaiting_private",
            "public_reply_count",
            "public_reply_limit",
            "priority",
            "sentiment",
            "language",
            "assignee",
            "contact",
            "tags",
            "preview",
            "sla_state",
            "sla_kind",
            "sla_lane",
            "sla_due_at",
            "sla_due_soon_at",
            "sla_breached_at",
            "resolution_due_at",
            "queue_at",
            "engagement_total",
            "engagement_per_hour",
            "engagement_read_at",
            "spreading_since",
            "follower_band",
            "no_reply_reason",
            "no_reply_at",
            "first_response_at",
            "last_customer_message_at",
            "last_activity_at",
            "snoozed_until",
            "resolved_at",
            "created_at",
        ]

    def get_brand(self, conversation: Conversation) -> dict[str, Any]:
        return {"id": conversation.brand_id, "name": conversation.brand.name}

    def get_contact(self, conversation: Conversation) -> dict[str, Any]:
        return {
            "id": conversation.contact_id,
            "name": conversation.contact.display_name,
        }

    def get_tags(self, conversation: Conversation) -> list[str]:
        loaded: list[str] | None = getattr(conversation, "tag_names", None)
        if loaded is not None:
            return loaded
        tags: dict[int, list[str]] = self.context.get("tags", {})
        return tags.get(conversation.pk, [])

    def get_sla_state(self, conversation: Conversation) -> str:
        return sla_state(conversation, timezone.now())


class MessageOutput(serializers.ModelSerializer[Message]):
    author = serializers.SerializerMethodField()
    scheduled_for = serializers.DateTimeField(source="send_after", allow_null=True)

    class Meta:
        model = Message
        fields: ClassVar[list[str]] = [
            "id",
            "conversation_id",
            "direction",
            "visibility",
            "kind",
            "text",
            "language",
            "sentiment_score",
            "angry",
            "author",
            "delivery_status",
            "scheduled_for",
            "attempts",
            "last_error",
            "external_url",
            "created_at",
            "sent_at",
        ]

    def get_author(self, message: Message) -> dict[str, Any] | None:
        if message.author_agent_id is not None and message.author_agent:
            return {
                "type": "agent",
                "id": message.author_agent_id,
                "name": message.author_agent.public_name,
            }
        identity = message.author_identity
        if identity is not None:
            return {
                "type": "customer",
                "id": identity.contact_id,
                "name": identity.display_name or identity.handle,
                "handle": identity.handle,
            }
        return None


class NoteOutput(serializers.ModelSerializer[Note]):
    author = PersonSerializer(allow_null=True)

    class Meta:
        model = Note
        fields: ClassVar[list[str]] = ["id", "conversation_id", "author", "text"]


# What the list's rows load (the rest is deferred): ConversationOutput's fields,
# what sla_state and the next page's cursor read (helpdesk.pagination), the tenant
# (helpdesk.lookups attaches the contact with it), the brand's name and reply
# limit, the account's key and the assignee's public name. Reading any other
# column would cost a query per row (tests/helpdesk/test_read_path.py counts them).
LIST_COLUMNS = (
    *(
        name
        for name in ConversationOutput.Meta.fields
        if name
        not in ("brand", "account_id", "public_reply_limit", "tags", "sla_state")
    ),
    "tenant_id",
    "sla_run_started_at",
    "brand__name",
    "brand__public_reply_limit",
    "social_account__id",
    "assignee__display_name",
    "assignee__first_name",
    "assignee__email",
)


def _tags_of(conversations: list[Conversation]) -> dict[int, list[str]]:
    # Rows read through helpdesk.selectors.conversation_rows carry their tag names.
    missing = [c.pk for c in conversations if not hasattr(c, "tag_names")]
    return conversation_tags(missing) if missing else {}


def _conversation_data(
    conversations: list[Conversation],
    *,
    many: bool = True,
    tags: dict[int, list[str]] | None = None,
) -> Any:
    if tags is None:
        tags = _tags_of(conversations)
    if many:
        return outputs(ConversationOutput, conversations, context={"tags": tags})
    return output(ConversationOutput, conversations[0], context={"tags": tags})


class ConversationListApi(TenantScopedApi):
    """The inbox as data: the same order and filters as the inbox page."""

    class ConversationFilter(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=[*Conversation.Status.values, "all"], required=False
        )
        brand = serializers.IntegerField(required=False, min_value=1)
        account = serializers.IntegerField(required=False, min_value=1)
        platform = serializers.ChoiceField(choices=Platform.choices, required=False)
        origin = serializers.ChoiceField(
            choices=Conversation.Origin.choices, required=False
        )
        sentiment = serializers.ChoiceField(
            choices=Conversation.Sentiment.choices, required=False
        )
        tag = serializers.CharField(required=False, max_length=60)
        assignee = serializers.RegexField(r"^(me|none|\d+)$", required=False)
        spreading = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Only conversations flagged spreading (R13).",
        )
        language = serializers.ChoiceField(
            choices=[*LANGUAGES, "unknown"],
            required=False,
            help_text="The conversation's detected language (ISO 639-1), or `unknown`.",
        )

    @extend_schema(
        operation_id="conversations_list",
        parameters=[ConversationFilter],
        responses=inline_serializer(
            "ConversationPage",
            {
                "results": ConversationOutput(many=True),
                "next": serializers.URLField(allow_null=True),
            },
        ),
    )
    def get(self, request: Request) -> HttpResponse:
        data = validated_query(self.ConversationFilter, request.query_params)
        chosen = data.get("status", Conversation.Status.OPEN)
        assignee = data.get("assignee")
        rows, next_url = read_inbox_page(
            self.membership,
            request=request,
            size=page_size(request),
            columns=LIST_COLUMNS,
            # The page's values alone, when they will be written out.
            values=plain_json_negotiated(request) and writes_plainly(),
            status=None if chosen == "all" else chosen,
            brand_id=data.get("brand"),
            account_id=data.get("account"),
            platform=data.get("platform"),
            origin=data.get("origin"),
            sentiment=data.get("sentiment"),
            language=(
                "" if data.get("language") == "unknown" else data.get("language")
            ),
            tag=data.get("tag"),
            spreading=data["spreading"],
            assignee_id=(
                self.membership.user_id
                if assignee == "me"
                else int(assignee)
                if assignee not in (None, "none")
                else None
            ),
            unassigned=assignee == "none",
        )
        if isinstance(rows, Fetched):
            written = written_page(rows)
        else:
            written = written_rows(rows, _tags_of(rows))
        if written is not None:
            answer = written_answer(request, paginated(written, next_url), 200)
            if answer is not None:
                return answer
        conversations = rows.instances() if isinstance(rows, Fetched) else rows
        return Response(paginated(_conversation_data(conversations), next_url))


class IncludeField(serializers.CharField):
    """A comma-separated list of names from `choices` (repeats allowed)."""

    def __init__(self, *, choices: list[str], **kwargs: Any) -> None:
        self.names = choices
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> set[str]:  # type: ignore[override]
        text = super().to_internal_value(data)
        if len(text) > 100:
            self.fail("max_length", max_length=100)
        names = {name.strip() for name in text.split(",") if name.strip()}
        unknown = sorted(names - set(self.names))
        if unknown:
            allowed = ", ".join(self.names)
            raise serializers.ValidationError(
                f"Unknown: {', '.join(unknown)}. Choose from: {allowed}."
            )
        return names


class ConversationThreadOutput(ConversationOutput):
    """A conversation with the parts of its thread that `include` asked for."""

    messages = MessageOutput(
        many=True,
        required=False,
        help_text="With `include=messages`: as `GET .../messages/` returns them.",
    )
    notes = NoteOutput(
        many=True,
        required=False,
        help_text="With `include=notes`: as `GET .../notes/` returns them.",
    )

    class Meta(ConversationOutput.Meta):
        fields: ClassVar[list[str]] = [
            *ConversationOutput.Meta.fields,
            "messages",
            "notes",
        ]


class ConversationDetailApi(TenantScopedApi):
    """Read one conversation (with its thread on request); change its status,
    priority, assignee or tags."""

    class DetailInput(serializers.Serializer[Any]):
        include = IncludeField(
            choices=["messages", "notes"],
            required=False,
            help_text="Parts of the thread to return with the conversation, "
            "comma-separated: `messages`, `notes` (one request instead of two).",
        )

    class ConversationUpdateInput(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=Conversation.Status.choices, required=False
        )
        snooze_until = serializers.DateTimeField(required=False)
        priority = serializers.IntegerField(required=False, min_value=0, max_value=100)
        assignee_id = serializers.IntegerField(required=False, allow_null=True)
        tags = serializers.ListField(
            child=serializers.CharField(max_length=60), required=False, max_length=50
        )

        def validate_assignee_id(self, value: int | None) -> Any:
            if value is None:
                return None
            member = (
                Membership.objects.select_related("user").filter(user_id=value).first()
            )
            if member is None:
                raise serializers.ValidationError("No such member in this workspace.")
            return member.user

    @extend_schema(parameters=[DetailInput], responses=ConversationThreadOutput)
    def get(self, request: Request, conversation_id: int) -> HttpResponse:
        query = validated_query(self.DetailInput, request.query_params)
        include = query.get("include", set())
        conversation = access_conversation_read(self.membership, conversation_id)
        tags = _tags_of([conversation])
        thread: dict[str, Any] = {}
        if "messages" in include:
            messages = conversation_messages(conversation)
            thread["messages"] = outputs(MessageOutput, messages)
        if "notes" in include:
            notes = conversation_notes(conversation)
            thread["notes"] = outputs(NoteOutput, notes)
        written = written_rows([conversation], tags)
        if written is not None and plain(thread, floats=True):
            answer = written_answer(request, {**written[0], **thread}, 200)
            if answer is not None:
                return answer
        data = _conversation_data([conversation], many=False, tags=tags)
        data.update(thread)
        return Response(data)

    @extend_schema(request=ConversationUpdateInput, responses=ConversationOutput)
    def patch(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation(self.membership, conversation_id)
        payload = self.ConversationUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        updated = update_conversation(
            conversation,
            membership=self.membership,
            status=data.get("status"),
            snooze_until=data.get("snooze_until"),
            priority=data.get("priority"),
            assignee=data.get("assignee_id", UNSET),
            tags=data.get("tags"),
        )
        fresh = access_conversation_read(self.membership, updated.pk)
        return Response(_conversation_data([fresh], many=False))


class MessageListApi(TenantScopedApi):
    """A conversation's messages, oldest first; post a reply (every care rule)."""

    class ReplyCreateInput(serializers.Serializer[Any]):
        text = serializers.CharField(max_length=10000, trim_whitespace=False)
        visibility = serializers.ChoiceField(
            choices=Message.Visibility.choices, required=False
        )
        seen_seq = serializers.IntegerField(required=False, min_value=0)
        confirm = serializers.ListField(
            child=serializers.ChoiceField(
                choices=["near_duplicate", "stale_view", "deflection"]
            ),
            required=False,
            max_length=5,
        )
        override_reason = serializers.CharField(
            required=False, allow_blank=True, max_length=500
        )

    @extend_schema(responses=MessageOutput(many=True))
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation(self.membership, conversation_id)
        messages = conversation_messages(conversation)
        return Response(outputs(MessageOutput, messages))

    @extend_schema(request=ReplyCreateInput, responses={201: MessageOutput})
    def post(self, request: Request, conversation_id: int) -> HttpResponse:
        conversation = access_conversation_for_reply(self.membership, conversation_id)
        data = _reply_input(request_json(request))
        # The reply is the request's last write: its statement may take COMMIT
        # with it (tenants.last_write), releasing the workspace's event counter
        # before the answer is built.
        with commit_with_last_write():
            outcome = post_reply(
                conversation,
                membership=self.membership,
                text=data["text"],
                visibility=data.get("visibility"),
                seen_seq=data.get("seen_seq"),
                confirm=data.get("confirm", []),
                override_reason=data.get("override_reason", ""),
            )
            return json_answer(
                request,
                output(MessageOutput, outcome.message),
                status.HTTP_201_CREATED,
            )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _reply_input(data: Any) -> dict[str, Any]:
    """`validated_input(MessageListApi.ReplyCreateInput, data)`.

    The usual body, `{"text": ...}` alone with a text the field accepts (a
    string, not empty, at most 10,000 characters, no NUL, no surrogate: the
    CharField's blank check and validators), validates to `{"text": text}`
    without the serializer's run over its five fields (14 us of CPU in a loop,
    about 0.1 ms inside a reply request on the bench machine); every other body
    goes through the serializer, so its data and errors are DRF's."""
    if type(data) is dict and len(data) == 1:
        text = data.get("text")
        if (
            type(text) is str
            and 0 < len(text) <= 10000
            and "\x00" not in text
            and (text.isascii() or _SURROGATE.search(text) is None)
        ):
            return {"text": text}
    validated: dict[str, Any] = validated_input(MessageListApi.ReplyCreateInput, data)
    return validated


class ConversationMovePrivateApi(TenantScopedApi):
    """R4: invite the customer to a private channel on the same platform."""

    class MovePrivateInput(serializers.Serializer[Any]):
        public_text = serializers.CharField(max_length=10000)
        private_text = serializers.CharField(
            max_length=10000, required=False, allow_blank=True
        )
        confirm = serializers.ListField(
            child=serializers.ChoiceField(
                choices=["near_duplicate", "stale_view", "deflection"]
            ),
            required=False,
            max_length=5,
        )

    @extend_schema(
        request=MovePrivateInput,
        responses={
            201: inline_serializer(
                "MovePrivateResult", {"messages": MessageOutput(many=True)}
            )
        },
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation(self.membership, conversation_id)
        payload = self.MovePrivateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        queued = move_to_private(
            conversation,
            membership=self.membership,
            public_text=data["public_text"],
            private_text=data.get("private_text", ""),
            confirm=data.get("confirm", []),
        )
        return Response(
            {"messages": outputs(MessageOutput, queued)},
            status=status.HTTP_201_CREATED,
        )


class ConversationNoReplyApi(TenantScopedApi):
    """Mark a conversation "no reply needed" with a reason (R9); audited."""

    class NoReplyInput(serializers.Serializer[Any]):
        reason = serializers.ChoiceField(choices=NoReplyReason.choices)

    @extend_schema(request=NoReplyInput, responses=ConversationOutput)
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation(self.membership, conversation_id)
        payload = self.NoReplyInput(data=request.data)
        payload.is_valid(raise_exception=True)
        mark_no_reply(
            conversation,
            membership=self.membership,
            reason=payload.validated_data["reason"],
        )
        fresh = access_conversation_read(self.membership, conversation.pk)
        return Response(_conversation_data([fresh], many=False))


class MessageDetailApi(TenantScopedApi):
    """Read one message; edit a reply's text during its hold (R5)."""

    class ReplyEditInput(serializers.Serializer[Any]):
        text = serializers.CharField(max_length=10000)

    @extend_schema(responses=MessageOutput)
    def get(self, request: Request, message_id: int) -> Response:
        message = access_message(self.membership, message_id)
        return Response(output(MessageOutput, message))

    @extend_schema(request=ReplyEditInput, responses=MessageOutput)
    def patch(self, request: Request, message_id: int) -> Response:
        message = access_message(self.membership, message_id)
        payload = self.ReplyEditInput(data=request.data)
        payload.is_valid(raise_exception=True)
        edited = edit_scheduled_reply(
            _outbound(message),
            membership=self.membership,
            text=payload.validated_data["text"],
        )
        return Response(output(MessageOutput, edited))


class MessageCancelApi(TenantScopedApi):
    """Undo a reply during its hold: it is never sent (R5)."""

    @extend_schema(request=None, responses=MessageOutput)
    def post(self, request: Request, message_id: int) -> Response:
        message = _outbound(access_message(self.membership, message_id))
        cancelled = cancel_scheduled_reply(message, membership=self.membership)
        return Response(output(MessageOutput, cancelled))


class MessageRetryApi(TenantScopedApi):
    """Send a failed reply again (the public limit applies again)."""

    @extend_schema(request=None, responses=MessageOutput)
    def post(self, request: Request, message_id: int) -> Response:
        message = _outbound(access_message(self.membership, message_id))
        retried = retry_failed_message(message, membership=self.membership)
        return Response(output(MessageOutput, retried))


class NoteListApi(TenantScopedApi):
    """A conversation's internal notes; add one (never sent to the customer)."""

    class NoteCreateInput(serializers.Serializer[Any]):
        text = serializers.CharField(max_length=10000)

    @extend_schema(responses=NoteOutput(many=True))
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation(self.membership, conversation_id)
        notes = conversation_notes(conversation)
        return Response(outputs(NoteOutput, notes))

    @extend_schema(request=NoteCreateInput, responses={201: NoteOutput})
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation(self.membership, conversation_id)
        payload = self.NoteCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        note = add_note(
            conversation,
            membership=self.membership,
            text=payload.validated_data["text"],
        )
        return Response(output(NoteOutput, note), status=status.HTTP_201_CREATED)


def _outbound(message: Message) -> Message:
    # Customer messages are not replies: undo, edit and retry do not apply to them.
    if message.direction != Message.Direction.OUT:
        raise Http404("No such reply")
    return message
