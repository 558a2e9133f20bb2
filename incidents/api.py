"""REST API of incidents (R13), mounted under /api/v1/t/<tenant_slug>/incidents/.

Every member (token scope read) reads incidents, their timeline and the progress
of their updates; agents (write scope) open, link, note, hold, send and close.
"""

from typing import Any, ClassVar

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.models import Conversation, Tag
from incidents import updates
from incidents.access import access_incident, access_incident_update, access_recipients
from incidents.models import Incident, IncidentEntry, IncidentUpdate, UpdateRecipient
from incidents.selectors import (
    incident_conversations,
    incident_timeline,
    unanswered_count,
    update_problems,
    workspace_incidents,
)
from incidents.services import (
    add_incident_note,
    close_incident,
    create_incident,
    link_conversations,
    set_holding_statement,
    unlink_conversation,
    update_incident_rule,
)
from social.models import ListeningRule
from tenants.api_fields import BrandIdField
from tenants.permissions import TenantScopedApi

PREVIEW_SAMPLE = 3


class ConversationIdsField(serializers.ListField):
    """Ids of conversations of this workspace; validates to the Conversations."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.IntegerField(min_value=1))
        kwargs.setdefault("max_length", 500)
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        ids = super().run_validation(data)
        found = {
            c.pk: c
            for c in Conversation.objects.select_related("brand", "contact").filter(
                pk__in=ids
            )
        }
        missing = sorted({i for i in ids if i not in found})
        if missing:
            raise serializers.ValidationError(
                "No such conversation in this workspace: "
                + ", ".join(map(str, missing))
                + "."
            )
        return [found[i] for i in dict.fromkeys(ids)]


def _tag(value: int | None) -> Tag | None:
    if value is None:
        return None
    tag = Tag.objects.filter(pk=value).first()
    if tag is None:
        raise serializers.ValidationError("No such tag in this workspace.")
    return tag


def _listening_rule(value: int | None) -> ListeningRule | None:
    if value is None:
        return None
    rule = ListeningRule.objects.filter(pk=value).first()
    if rule is None:
        raise serializers.ValidationError("No such listening rule in this workspace.")
    return rule


class IncidentOutput(serializers.ModelSerializer[Incident]):
    linked = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Incident
        fields: ClassVar[list[str]] = [
            "id",
            "title",
            "status",
            "brand",
            "holding_statement",
            "holding_statement_at",
            "rule_terms",
            "rule_tag",
            "rule_listening_rule",
            "linked",
            "created_at",
            "closed_at",
        ]


class EntryOutput(serializers.ModelSerializer[IncidentEntry]):
    actor = serializers.CharField(source="actor.public_name", default=None)

    class Meta:
        model = IncidentEntry
        fields: ClassVar[list[str]] = [
            "id",
            "kind",
            "text",
            "data",
            "actor",
            "created_at",
        ]


class LinkedConversationOutput(serializers.ModelSerializer[Conversation]):
    customer = serializers.CharField(source="contact.display_name")
    unanswered = serializers.BooleanField()

    class Meta:
        model = Conversation
        fields: ClassVar[list[str]] = [
            "id",
            "customer",
            "platform",
            "status",
            "channel_state",
            "public_reply_count",
            "unanswered",
        ]


class IncidentDetailOutput(serializers.Serializer[Any]):
    incident = IncidentOutput()
    conversations = LinkedConversationOutput(many=True)
    unanswered = serializers.IntegerField()
    timeline = EntryOutput(many=True)


class RecipientOutput(serializers.ModelSerializer[UpdateRecipient]):
    class Meta:
        model = UpdateRecipient
        fields: ClassVar[list[str]] = [
            "id",
            "conversation",
            "status",
            "reason",
            "flagged",
            "visibility",
            "message",
        ]


class UpdateOutput(serializers.ModelSerializer[IncidentUpdate]):
    counts = serializers.SerializerMethodField()
    problems = serializers.SerializerMethodField()

    class Meta:
        model = IncidentUpdate
        fields: ClassVar[list[str]] = [
            "id",
            "text",
            "idempotency_key",
            "status",
            "counts",
            "problems",
            "created_at",
            "finished_at",
        ]

    def get_counts(self, update: IncidentUpdate) -> dict[str, int]:
        return updates.update_counts(update)

    def get_problems(self, update: IncidentUpdate) -> list[dict[str, Any]]:
        return list(RecipientOutput(update_problems(update), many=True).data)


class IncidentRuleFields(serializers.Serializer[Any]):
    rule_terms = serializers.CharField(required=False, allow_blank=True, max_length=300)
    rule_tag_id = serializers.IntegerField(required=False, allow_null=True)
    rule_listening_rule_id = serializers.IntegerField(required=False, allow_null=True)

    def validate_rule_tag_id(self, value: int | None) -> Tag | None:
        return _tag(value)

    def validate_rule_listening_rule_id(
        self, value: int | None
    ) -> ListeningRule | None:
        return _listening_rule(value)


def _detail(incident: Incident, membership: Any) -> dict[str, Any]:
    conversations = list(incident_conversations(membership, incident))
    return {
        "incident": IncidentOutput(incident).data,
        "conversations": LinkedConversationOutput(conversations, many=True).data,
        "unanswered": unanswered_count(conversations),
        "timeline": EntryOutput(incident_timeline(incident), many=True).data,
    }


class IncidentListApi(TenantScopedApi):
    """The workspace's incidents (members); open one (agents)."""

    class IncidentFilter(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=Incident.Status.choices, required=False
        )

    class IncidentCreateInput(IncidentRuleFields):
        title = serializers.CharField(max_length=160)
        brand_id = BrandIdField(source="brand", required=False, allow_null=True)
        holding_statement = serializers.CharField(
            required=False, allow_blank=True, max_length=2000, default=""
        )

    @extend_schema(parameters=[IncidentFilter], responses=IncidentOutput(many=True))
    def get(self, request: Request) -> Response:
        query = self.IncidentFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        incidents = workspace_incidents(
            self.membership, status=query.validated_data.get("status")
        )
        return Response(IncidentOutput(incidents, many=True).data)

    @extend_schema(request=IncidentCreateInput, responses={201: IncidentOutput})
    def post(self, request: Request) -> Response:
        payload = self.IncidentCreateInput(
            data=request.data, context={"membership": self.membership}
        )
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        incident = create_incident(
            self.membership,
            title=data["title"],
            brand=data.get("brand"),
            holding_statement=data["holding_statement"],
            rule_terms=data.get("rule_terms", ""),
            rule_tag=data.get("rule_tag_id"),
            rule_listening_rule=data.get("rule_listening_rule_id"),
        )
        return Response(IncidentOutput(incident).data, status=status.HTTP_201_CREATED)


class IncidentDetailApi(TenantScopedApi):
    """An incident with its linked conversations, unanswered count and timeline;
    rename it or change its linking rule (agents)."""

    class IncidentUpdateInput(IncidentRuleFields):
        title = serializers.CharField(required=False, max_length=160)

    @extend_schema(responses=IncidentDetailOutput)
    def get(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        return Response(_detail(incident, self.membership))

    @extend_schema(request=IncidentUpdateInput, responses=IncidentOutput)
    def patch(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        payload = self.IncidentUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        updated = update_incident_rule(
            self.membership,
            incident,
            title=data.get("title"),
            rule_terms=data.get("rule_terms"),
            rule_tag=data.get("rule_tag_id", ...),
            rule_listening_rule=data.get("rule_listening_rule_id", ...),
        )
        return Response(IncidentOutput(updated).data)


class IncidentLinkApi(TenantScopedApi):
    """Link conversations to the incident (from a thread, or several selected in
    the inbox: `via` "bulk"); already linked ones stay as they are."""

    class IncidentLinkInput(serializers.Serializer[Any]):
        conversation_ids = ConversationIdsField(min_length=1)
        via = serializers.ChoiceField(
            choices=[("hand", "By hand"), ("bulk", "Selected in the inbox")],
            default="hand",
        )

    @extend_schema(
        request=IncidentLinkInput,
        responses={200: serializers.DictField(child=serializers.ListField())},
    )
    def post(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        payload = self.IncidentLinkInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        linked = link_conversations(
            incident,
            data["conversation_ids"],
            membership=self.membership,
            via=data["via"],
        )
        return Response({"linked": linked})


class IncidentUnlinkApi(TenantScopedApi):
    """Remove one conversation from the incident."""

    @extend_schema(request=None, responses={204: None})
    def delete(
        self, request: Request, incident_id: int, conversation_id: int
    ) -> Response:
        incident = access_incident(self.membership, incident_id)
        conversation = Conversation.objects.filter(pk=conversation_id).first()
        if conversation is None or not unlink_conversation(
            self.membership, incident, conversation
        ):
            raise Http404("This conversation is not linked to the incident.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class IncidentNoteApi(TenantScopedApi):
    """Add an internal note to the incident's timeline (never sent)."""

    class IncidentNoteInput(serializers.Serializer[Any]):
        text = serializers.CharField(max_length=5000)

    @extend_schema(request=IncidentNoteInput, responses={201: EntryOutput})
    def post(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        payload = self.IncidentNoteInput(data=request.data)
        payload.is_valid(raise_exception=True)
        entry = add_incident_note(
            self.membership, incident, text=payload.validated_data["text"]
        )
        return Response(EntryOutput(entry).data, status=status.HTTP_201_CREATED)


class IncidentHoldingStatementApi(TenantScopedApi):
    """Set the current holding statement (empty: withdraw it)."""

    class HoldingStatementInput(serializers.Serializer[Any]):
        text = serializers.CharField(allow_blank=True, max_length=2000)

    @extend_schema(request=HoldingStatementInput, responses=IncidentOutput)
    def put(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        payload = self.HoldingStatementInput(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = set_holding_statement(
            self.membership, incident, text=payload.validated_data["text"]
        )
        return Response(IncidentOutput(updated).data)


class PreviewOutput(serializers.Serializer[Any]):
    conversation_id = serializers.IntegerField()
    customer = serializers.CharField()
    visibility = serializers.CharField(help_text="Empty: the customer is skipped.")
    skip_reason = serializers.CharField()
    text = serializers.CharField()


class IncidentPreviewApi(TenantScopedApi):
    """The update rendered for sample customers, as it would be sent; nothing is
    written. Samples: `conversation_ids`, else the first linked ones."""

    class IncidentPreviewInput(serializers.Serializer[Any]):
        text = serializers.CharField(allow_blank=True, max_length=4000)
        conversation_ids = ConversationIdsField(required=False, max_length=10)

    @extend_schema(request=IncidentPreviewInput, responses=PreviewOutput(many=True))
    def post(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        payload = self.IncidentPreviewInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        samples = data.get("conversation_ids") or list(
            incident_conversations(self.membership, incident)[:PREVIEW_SAMPLE]
        )
        rendered = updates.preview_update(
            self.membership, incident, text=data["text"], conversations=samples
        )
        return Response(PreviewOutput(rendered, many=True).data)


class IncidentUpdateListApi(TenantScopedApi):
    """The incident's updates with their progress; send a new one to every linked
    customer. The same `idempotency_key` answers with the update it made (200),
    so a double click or a retried request sends nothing twice."""

    class IncidentSendInput(serializers.Serializer[Any]):
        text = serializers.CharField(allow_blank=True, max_length=4000)
        idempotency_key = serializers.UUIDField()

    @extend_schema(responses=UpdateOutput(many=True))
    def get(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        rows = IncidentUpdate.objects.filter(incident=incident).order_by("-id")
        return Response(UpdateOutput(rows, many=True).data)

    @extend_schema(
        request=IncidentSendInput, responses={201: UpdateOutput, 200: UpdateOutput}
    )
    def post(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        payload = self.IncidentSendInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        update, created = updates.start_update(
            self.membership,
            incident,
            text=data["text"],
            idempotency_key=str(data["idempotency_key"]),
        )
        return Response(
            UpdateOutput(update).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class IncidentUpdateDetailApi(TenantScopedApi):
    """One update's progress: counts per status and the skipped and failed
    customers with the reason."""

    @extend_schema(responses=UpdateOutput)
    def get(self, request: Request, incident_id: int, update_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        update = access_incident_update(self.membership, incident, update_id)
        return Response(UpdateOutput(update).data)


class IncidentUpdateRetryApi(TenantScopedApi):
    """Send the update again to failed customers (by default all of them). With
    `confirm_duplicate`, the ones the near-duplicate check flagged go anyway."""

    class IncidentRetryInput(serializers.Serializer[Any]):
        recipient_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            required=False,
            max_length=1000,
        )
        confirm_duplicate = serializers.BooleanField(default=False)

    @extend_schema(request=IncidentRetryInput, responses=UpdateOutput)
    def post(self, request: Request, incident_id: int, update_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        update = access_incident_update(self.membership, incident, update_id)
        payload = self.IncidentRetryInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        if "recipient_ids" in data:
            chosen = access_recipients(self.membership, update, data["recipient_ids"])
        else:
            chosen = list(
                UpdateRecipient.objects.filter(
                    update=update, status=UpdateRecipient.Status.FAILED
                )
            )
        updates.retry_recipients(
            self.membership,
            update,
            recipients=chosen,
            confirm_duplicate=data["confirm_duplicate"],
        )
        update.refresh_from_db()
        return Response(UpdateOutput(update).data)


class IncidentCloseApi(TenantScopedApi):
    """Close the incident, resolving exactly the linked conversations listed in
    `resolve_ids` (may be empty: nothing is resolved silently)."""

    class IncidentCloseInput(serializers.Serializer[Any]):
        resolve_ids = ConversationIdsField(allow_empty=True)

    @extend_schema(request=IncidentCloseInput, responses=IncidentOutput)
    def post(self, request: Request, incident_id: int) -> Response:
        incident = access_incident(self.membership, incident_id)
        payload = self.IncidentCloseInput(data=request.data)
        payload.is_valid(raise_exception=True)
        close_incident(
            self.membership, incident, resolve=payload.validated_data["resolve_ids"]
        )
        return Response(IncidentOutput(incident).data)
