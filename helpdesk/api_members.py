"""REST API of the languages a member answers in (auto-assignment prefers them).

A member sets their own (agent role, write scope); admins set anyone's.
"""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.language import LANGUAGE_CHOICES
from helpdesk.services.assignment import set_member_languages
from tenants.access import access_member
from tenants.api import MemberOutput
from tenants.permissions import TenantScopedApi


class MemberLanguagesApi(TenantScopedApi):
    """Replace the languages a member answers in."""

    class MemberLanguagesInput(serializers.Serializer[Any]):
        languages = serializers.ListField(
            child=serializers.ChoiceField(choices=LANGUAGE_CHOICES),
            allow_empty=True,
            max_length=len(LANGUAGE_CHOICES),
            help_text="ISO 639-1 codes; [] for none.",
        )

    @extend_schema(request=MemberLanguagesInput, responses=MemberOutput)
    def put(self, request: Request, membership_id: int) -> Response:
        target = access_member(self.membership, membership_id)
        payload = self.MemberLanguagesInput(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = set_member_languages(
            self.membership,
            target=target,
            languages=payload.validated_data["languages"],
        )
        return Response(MemberOutput(updated).data)
