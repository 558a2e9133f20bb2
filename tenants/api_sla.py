"""REST API of SLA policies and holidays (R9), under /api/v1/t/<slug>/.

- `brands/<id>/sla-policy/`: the brand's policy in force (GET), set its own
  targets (PUT), or go back to the workspace fallback (DELETE);
- `sla-policy/`: the workspace fallback (GET, PUT);
- `brands/<id>/holidays/`: list (GET) and add (POST); `.../holidays/<hid>/`:
  remove (DELETE).

Every member reads (read scope); admins write (admin scope: workspace
configuration). Bad values are 400 with a message per field and change nothing;
another workspace's brand or holiday id is 404.
"""

from typing import Any, ClassVar, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.access import access_brand
from tenants.brand_rules import (
    MAX_URGENT_TAGS,
    SLA_TARGET_LIMITS,
    TAG_NAME_MAX,
    SlaPolicySettings,
)
from tenants.models import ApiToken, Holiday, Membership
from tenants.permissions import TenantScopedApi
from tenants.sla import (
    HOLIDAY_NAME_MAX,
    SlaPolicyView,
    access_holiday,
    add_holiday,
    brand_holidays,
    remove_holiday,
    reset_sla_policy,
    sla_policy_view,
    update_sla_policy,
)

Role = Membership.Role
Scope = ApiToken.Scope
_LOW, _HIGH = SLA_TARGET_LIMITS


def _target(help_text: str, **kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, min_value=_LOW, max_value=_HIGH, help_text=help_text, **kwargs
    )


class SlaPolicyOutput(serializers.Serializer[SlaPolicyView]):
    brand_id = serializers.IntegerField(
        allow_null=True, help_text="Null for the workspace fallback."
    )
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["brand", "workspace", "default"],
        help_text="Where the values come from: the brand's own policy, the "
        "workspace fallback, or the defaults.",
    )
    inherited = serializers.BooleanField(
        help_text="True when this brand (or the workspace) has no policy of its own."
    )
    first_response_minutes = serializers.IntegerField()
    next_response_minutes = serializers.IntegerField()
    resolution_minutes = serializers.IntegerField(allow_null=True)
    urgent_first_response_minutes = serializers.IntegerField()
    urgent_next_response_minutes = serializers.IntegerField()
    urgent_on_negative = serializers.BooleanField()
    urgent_tags = serializers.ListField(child=serializers.CharField())
    updated_at = serializers.DateTimeField(allow_null=True)


class SlaPolicyInput(serializers.Serializer[Any]):
    """Targets in whole minutes of business time, 1 to 10080 (a week). A field
    left out keeps its current value; the service checks them all again."""

    first_response_minutes = _target("Until the first answer (default 60).")
    next_response_minutes = _target(
        "Until the next answer after the customer writes again (default 60)."
    )
    resolution_minutes = _target(
        "Until the conversation is resolved; null for no target.", allow_null=True
    )
    urgent_first_response_minutes = _target("The urgent lane's first answer.")
    urgent_next_response_minutes = _target("The urgent lane's next answer.")
    urgent_on_negative = serializers.BooleanField(
        required=False,
        help_text="Negative sentiment puts a conversation in the urgent lane.",
    )
    urgent_tags = serializers.ListField(
        required=False,
        child=serializers.CharField(max_length=TAG_NAME_MAX),
        max_length=MAX_URGENT_TAGS,
        help_text="Tag names that put a conversation in the urgent lane.",
    )


def _policy_body(view: SlaPolicyView) -> dict[str, Any]:
    return cast(dict[str, Any], SlaPolicyOutput(view).data)


class BrandSlaPolicyApi(TenantScopedApi):
    """A brand's SLA policy in force (members); set its own targets or go back to
    the workspace fallback (admins, admin scope)."""

    write_role = Role.ADMIN
    write_scope = Scope.ADMIN

    @extend_schema(responses=SlaPolicyOutput)
    def get(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        return Response(_policy_body(sla_policy_view(brand)))

    @extend_schema(request=SlaPolicyInput, responses=SlaPolicyOutput)
    def put(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        payload = SlaPolicyInput(data=request.data)
        payload.is_valid(raise_exception=True)
        changes = cast(SlaPolicySettings, dict(payload.validated_data))
        view = update_sla_policy(brand, membership=self.membership, changes=changes)
        return Response(_policy_body(view))

    @extend_schema(request=None, responses=SlaPolicyOutput)
    def delete(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        view = reset_sla_policy(brand, membership=self.membership)
        return Response(_policy_body(view))


class WorkspaceSlaPolicyApi(TenantScopedApi):
    """The workspace's fallback SLA policy, for brands without their own (members
    read; admins, admin scope, change it)."""

    write_role = Role.ADMIN
    write_scope = Scope.ADMIN

    @extend_schema(responses=SlaPolicyOutput)
    def get(self, request: Request) -> Response:
        return Response(_policy_body(sla_policy_view(None)))

    @extend_schema(request=SlaPolicyInput, responses=SlaPolicyOutput)
    def put(self, request: Request) -> Response:
        payload = SlaPolicyInput(data=request.data)
        payload.is_valid(raise_exception=True)
        changes = cast(SlaPolicySettings, dict(payload.validated_data))
        view = update_sla_policy(None, membership=self.membership, changes=changes)
        return Response(_policy_body(view))


class HolidayOutput(serializers.ModelSerializer[Holiday]):
    class Meta:
        model = Holiday
        fields: ClassVar[list[str]] = [
            "id",
            "brand_id",
            "name",
            "start_date",
            "end_date",
        ]


class HolidayListApi(TenantScopedApi):
    """A brand's holidays, earliest first (members); add one (admins, admin scope)."""

    write_role = Role.ADMIN
    write_scope = Scope.ADMIN

    class HolidayInput(serializers.Serializer[Any]):
        name = serializers.CharField(max_length=HOLIDAY_NAME_MAX)
        start_date = serializers.DateField(help_text="The first closed day.")
        end_date = serializers.DateField(
            required=False,
            help_text="The last closed day (included); the first day when left out.",
        )

    @extend_schema(responses=HolidayOutput(many=True))
    def get(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        return Response(HolidayOutput(brand_holidays(brand), many=True).data)

    @extend_schema(request=HolidayInput, responses={201: HolidayOutput})
    def post(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        payload = self.HolidayInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        holiday = add_holiday(
            brand,
            membership=self.membership,
            name=data["name"],
            start_date=data["start_date"],
            end_date=data.get("end_date", data["start_date"]),
        )
        return Response(HolidayOutput(holiday).data, status=status.HTTP_201_CREATED)


class HolidayDetailApi(TenantScopedApi):
    """Remove one of a brand's holidays (admins, admin scope)."""

    write_role = Role.ADMIN
    write_scope = Scope.ADMIN

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, brand_id: int, holiday_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        holiday = access_holiday(self.membership, brand, holiday_id)
        remove_holiday(holiday, membership=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)
