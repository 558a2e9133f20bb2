"""REST API of contacts (R11): the directory, one contact with its identities and
conversations, corrections, and merges.

Reads are open to every member (token scope read). Corrections and merges need the
agent role and a write-scope token, as in the inbox's contact panel.
"""

from typing import Any, ClassVar

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from helpdesk.access import access_contact
from helpdesk.models import Contact, Conversation, Identity
from helpdesk.pagination import paginated
from helpdesk.selectors import (
    contact_conversations,
    contact_directory,
    contact_identities,
)
from helpdesk.services.contacts import merge_contacts, update_contact
from tenants.api_fields import BrandRefOutput
from tenants.permissions import TenantScopedApi


class IdentityOutput(serializers.ModelSerializer[Identity]):
    class Meta:
        model = Identity
        fields: ClassVar[list[str]] = [
            "id",
            "platform",
            "handle",
            "display_name",
            "followers",
            "profile_url",
        ]


class ContactConversationOutput(serializers.ModelSerializer[Conversation]):
    brand = BrandRefOutput()

    class Meta:
        model = Conversation
        fields: ClassVar[list[str]] = [
            "id",
            "brand",
            "platform",
            "origin",
            "status",
            "preview",
            "last_activity_at",
            "created_at",
        ]


class ContactOutput(serializers.ModelSerializer[Contact]):
    identities = IdentityOutput(many=True)
    merged_into_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Contact
        fields: ClassVar[list[str]] = [
            "id",
            "display_name",
            "email",
            "external_crm_id",
            "merged_into_id",
            "created_at",
            "identities",
        ]


class ContactDetailOutput(ContactOutput):
    """One contact: its notes, identities (widest reach first) and latest 50
    conversations (most recent activity first)."""

    identities = serializers.SerializerMethodField()  # type: ignore[assignment]
    conversations = serializers.SerializerMethodField()

    class Meta(ContactOutput.Meta):
        fields: ClassVar[list[str]] = [
            *ContactOutput.Meta.fields,
            "notes",
            "conversations",
        ]

    @extend_schema_field(IdentityOutput(many=True))
    def get_identities(self, contact: Contact) -> Any:
        return IdentityOutput(contact_identities(contact), many=True).data

    @extend_schema_field(ContactConversationOutput(many=True))
    def get_conversations(self, contact: Contact) -> Any:
        rows = contact_conversations(contact)
        return ContactConversationOutput(rows, many=True).data


class ContactListApi(TenantScopedApi):
    """The contact directory, newest first, with a keyset cursor (`next`)."""

    class ContactFilter(serializers.Serializer[Any]):
        q = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            help_text="Part of a name, handle or identity name; or an exact email "
            "or CRM id.",
        )
        include_merged = serializers.BooleanField(required=False, default=False)
        cursor = serializers.IntegerField(
            required=False, min_value=1, help_text="From the previous page's `next`."
        )
        page_size = serializers.IntegerField(
            required=False, default=25, min_value=1, max_value=100
        )

    @extend_schema(
        operation_id="contacts_list",
        parameters=[ContactFilter],
        responses=inline_serializer(
            "ContactPage",
            {
                "results": ContactOutput(many=True),
                "next": serializers.URLField(allow_null=True),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        filters = self.ContactFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        contacts = contact_directory(
            self.membership,
            query=data.get("q", ""),
            include_merged=data["include_merged"],
            before_id=data.get("cursor"),
        )
        rows, next_url = _id_page(contacts, request, size=data["page_size"])
        return Response(paginated(ContactOutput(rows, many=True).data, next_url))


class ContactDetailApi(TenantScopedApi):
    """Read one contact; correct its name, email, notes or CRM id (agents)."""

    class ContactUpdateInput(serializers.Serializer[Any]):
        display_name = serializers.CharField(
            required=False, allow_blank=True, max_length=200
        )
        email = serializers.EmailField(required=False, allow_blank=True)
        notes = serializers.CharField(
            required=False, allow_blank=True, max_length=10000
        )
        external_crm_id = serializers.CharField(
            required=False, allow_blank=True, max_length=128
        )

    @extend_schema(responses=ContactDetailOutput)
    def get(self, request: Request, contact_id: int) -> Response:
        contact = access_contact(self.membership, contact_id)
        return Response(ContactDetailOutput(contact).data)

    @extend_schema(request=ContactUpdateInput, responses=ContactDetailOutput)
    def patch(self, request: Request, contact_id: int) -> Response:
        contact = access_contact(self.membership, contact_id)
        payload = self.ContactUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = update_contact(
            self.membership, contact, changes=dict(payload.validated_data)
        )
        return Response(ContactDetailOutput(updated).data)


class ContactMergeApi(TenantScopedApi):
    """Merge contact `other_id` into this one (agents): its identities and
    conversations move here and it is kept, marked as merged into this one."""

    class ContactMergeInput(serializers.Serializer[Any]):
        other_id = serializers.IntegerField(
            min_value=1, help_text="The contact merged into this one."
        )

        def validate_other_id(self, value: int) -> Contact:
            target: Contact = self.context["contact"]
            try:
                other = access_contact(self.context["membership"], value)
            except Http404:
                raise serializers.ValidationError(
                    "No such contact in this workspace."
                ) from None
            if other.pk == target.pk:
                raise serializers.ValidationError(
                    "A contact cannot be merged into itself."
                )
            if other.merged_into_id is not None:
                raise serializers.ValidationError(
                    f"Contact {other.pk} was already merged into contact "
                    f"{other.merged_into_id}."
                )
            return other

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            target: Contact = self.context["contact"]
            if target.merged_into_id is not None:
                raise serializers.ValidationError(
                    f"This contact was merged into contact {target.merged_into_id}; "
                    "merge into that one."
                )
            return attrs

    @extend_schema(request=ContactMergeInput, responses=ContactDetailOutput)
    def post(self, request: Request, contact_id: int) -> Response:
        contact = access_contact(self.membership, contact_id)
        context = {"membership": self.membership, "contact": contact}
        payload = self.ContactMergeInput(data=request.data, context=context)
        payload.is_valid(raise_exception=True)
        merged = merge_contacts(
            self.membership, source=payload.validated_data["other_id"], target=contact
        )
        return Response(ContactDetailOutput(merged).data)


def _id_page(
    queryset: QuerySet[Contact], request: Request, *, size: int
) -> tuple[list[Contact], str | None]:
    """The first `size` rows and, when there are more, the next page's URL (its
    cursor is the last id shown; the selector orders by id descending)."""
    rows = list(queryset[: size + 1])
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    url = request.build_absolute_uri()
    return rows, replace_query_param(url, "cursor", rows[-1].pk)
