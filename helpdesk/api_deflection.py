"""REST API of a brand's deflection phrases (R15): every member reads them; admins
(admin scope: workspace configuration) replace the brand's own lists."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.deflection import DEFAULT_PHRASES
from helpdesk.services.deflection import update_deflection_phrases
from tenants.access import access_brand
from tenants.models import ApiToken, Brand, Membership
from tenants.permissions import TenantScopedApi


class DeflectionPhrasesOutput(serializers.Serializer[Any]):
    brand_id = serializers.IntegerField()
    custom = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="The brand's own lists, per language.",
    )
    defaults = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="The built-in lists, used for a language the brand has not set.",
    )
    effective = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="What the composer checks, per language.",
    )


def deflection_output(brand: Brand) -> dict[str, object]:
    custom = dict(brand.deflection_phrases or {})
    return {
        "brand_id": brand.pk,
        "custom": custom,
        "defaults": DEFAULT_PHRASES,
        "effective": {**DEFAULT_PHRASES, **custom},
    }


class BrandDeflectionApi(TenantScopedApi):
    """A brand's deflection phrases: read (members); replace (admins, admin scope)."""

    write_role = Membership.Role.ADMIN
    write_scope = ApiToken.Scope.ADMIN

    class DeflectionPhrasesInput(serializers.Serializer[Any]):
        phrases = serializers.JSONField(
            help_text='Per two-letter language code, a list of phrases, e.g. {"en": '
            '["call our hotline", "email us"]}. A language left out uses the '
            "defaults; an empty list switches the check off for it."
        )

    @extend_schema(responses=DeflectionPhrasesOutput)
    def get(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        return Response(deflection_output(brand))

    @extend_schema(request=DeflectionPhrasesInput, responses=DeflectionPhrasesOutput)
    def put(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        payload = self.DeflectionPhrasesInput(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = update_deflection_phrases(
            self.membership, brand, phrases=payload.validated_data["phrases"]
        )
        return Response(deflection_output(updated))
