"""REST API of saved replies (R6), managed like Zendesk macros: agents use them,
admins manage them.

Permissions: every member (token scope read) lists, reads and renders saved
replies. Creating, changing and deleting them needs the admin role and a token with
the write scope. Write, not admin: the admin scope is kept for the workspace's own
configuration (brands, tokens, listening rules); a saved reply is care content, like
a reply or a note, so an integration syncing a macro library needs no more than
write, while the role still keeps agents from editing the shared library.
"""

from typing import Any, ClassVar

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.access import access_conversation, access_saved_reply
from helpdesk.models import Conversation, SavedReply
from helpdesk.selectors import workspace_saved_replies
from helpdesk.services.conversations import UNSET
from helpdesk.services.replies import render_saved_reply
from helpdesk.services.saved_replies import (
    create_saved_reply,
    delete_saved_reply,
    update_saved_reply,
)
from tenants.api_fields import BrandIdField, BrandRefOutput
from tenants.models import Membership
from tenants.permissions import TenantScopedApi

ADMIN = Membership.Role.ADMIN


class SavedReplyOutput(serializers.ModelSerializer[SavedReply]):
    brand = BrandRefOutput(allow_null=True, help_text="None: shared by all brands.")

    class Meta:
        model = SavedReply
        fields: ClassVar[list[str]] = ["id", "title", "body", "brand", "created_at"]


class SavedReplyListApi(TenantScopedApi):
    """List saved replies (members); add one (admin role, write scope)."""

    write_role = ADMIN

    class SavedReplyFilter(serializers.Serializer[Any]):
        brand = serializers.IntegerField(
            required=False,
            min_value=1,
            help_text="Only the replies usable for this brand: its own and the "
            "shared ones.",
        )

    class SavedReplyCreateInput(serializers.Serializer[Any]):
        title = serializers.CharField(max_length=120)
        body = serializers.CharField(max_length=5000)
        brand_id = BrandIdField(
            source="brand",
            required=False,
            allow_null=True,
            default=None,
            help_text="A brand of this workspace; null or left out: shared.",
        )

    @extend_schema(parameters=[SavedReplyFilter], responses=SavedReplyOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.SavedReplyFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        replies = workspace_saved_replies(
            self.membership, brand_id=filters.validated_data.get("brand")
        )
        return Response(SavedReplyOutput(replies, many=True).data)

    @extend_schema(request=SavedReplyCreateInput, responses={201: SavedReplyOutput})
    def post(self, request: Request) -> Response:
        payload = self.SavedReplyCreateInput(
            data=request.data, context={"membership": self.membership}
        )
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        reply = create_saved_reply(
            self.membership,
            title=data["title"],
            body=data["body"],
            brand=data["brand"],
        )
        return Response(SavedReplyOutput(reply).data, status=status.HTTP_201_CREATED)


class SavedReplyDetailApi(TenantScopedApi):
    """Read a saved reply (members); change or delete it (admin role, write scope)."""

    write_role = ADMIN

    class SavedReplyUpdateInput(serializers.Serializer[Any]):
        title = serializers.CharField(required=False, max_length=120)
        body = serializers.CharField(required=False, max_length=5000)
        brand_id = BrandIdField(
            source="brand",
            required=False,
            allow_null=True,
            help_text="A brand of this workspace; null: shared.",
        )

    @extend_schema(responses=SavedReplyOutput)
    def get(self, request: Request, reply_id: int) -> Response:
        reply = access_saved_reply(self.membership, reply_id)
        return Response(SavedReplyOutput(reply).data)

    @extend_schema(request=SavedReplyUpdateInput, responses=SavedReplyOutput)
    def patch(self, request: Request, reply_id: int) -> Response:
        reply = access_saved_reply(self.membership, reply_id)
        payload = self.SavedReplyUpdateInput(
            data=request.data, context={"membership": self.membership}
        )
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        updated = update_saved_reply(
            self.membership,
            reply,
            title=data.get("title"),
            body=data.get("body"),
            brand=data.get("brand", UNSET),
        )
        return Response(SavedReplyOutput(updated).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, reply_id: int) -> Response:
        reply = access_saved_reply(self.membership, reply_id)
        delete_saved_reply(self.membership, reply)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SavedReplyRenderApi(TenantScopedApi):
    """A saved reply filled in for one conversation's customer and the caller
    ({first_name}, {agent_name}, {brand_name}): a starting point to personalise."""

    class SavedReplyRenderQuery(serializers.Serializer[Any]):
        conversation = serializers.IntegerField(
            min_value=1, help_text="The conversation the reply is for."
        )

        def validate_conversation(self, value: int) -> Conversation:
            reply: SavedReply = self.context["reply"]
            try:
                conversation = access_conversation(self.context["membership"], value)
            except Http404:
                raise serializers.ValidationError(
                    "No such conversation in this workspace."
                ) from None
            if reply.brand_id not in (None, conversation.brand_id):
                raise serializers.ValidationError(
                    "This saved reply belongs to another brand than the conversation's."
                )
            return conversation

    @extend_schema(
        parameters=[SavedReplyRenderQuery],
        responses=inline_serializer(
            "RenderedSavedReply",
            {
                "saved_reply_id": serializers.IntegerField(),
                "conversation_id": serializers.IntegerField(),
                "text": serializers.CharField(),
            },
        ),
    )
    def get(self, request: Request, reply_id: int) -> Response:
        reply = access_saved_reply(self.membership, reply_id)
        context = {"membership": self.membership, "reply": reply}
        query = self.SavedReplyRenderQuery(data=request.query_params, context=context)
        query.is_valid(raise_exception=True)
        conversation = query.validated_data["conversation"]
        text = render_saved_reply(
            reply.body, conversation=conversation, agent=self.membership.user
        )
        return Response(
            {
                "saved_reply_id": reply.pk,
                "conversation_id": conversation.pk,
                "text": text,
            }
        )
