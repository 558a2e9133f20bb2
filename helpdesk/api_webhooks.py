"""REST API of outbound webhook endpoints: CRUD, secrets, test ping, delivery log.

Everything here is an admin's business: reads and writes need the admin role and,
for tokens, the admin scope (endpoint URLs and secrets are sensitive).
"""

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.access import access_webhook_endpoint
from helpdesk.services.webhook_outbox import EVENT_TYPES
from helpdesk.services.webhooks import (
    create_webhook_endpoint,
    delete_webhook_endpoint,
    disable_webhook_endpoint,
    enable_webhook_endpoint,
    reveal_webhook_secret,
    rotate_webhook_secret,
    send_test_ping,
    update_webhook_endpoint,
)
from helpdesk.webhooks.models import WebhookDelivery, WebhookEndpoint
from helpdesk.webhooks.selectors import endpoint_deliveries, webhook_endpoints
from tenants.models import ApiToken, Membership
from tenants.permissions import TenantScopedApi

EVENT_CHOICES = [(name, name) for name in EVENT_TYPES]


class AdminApi(TenantScopedApi):
    read_role = Membership.Role.ADMIN
    read_scope = ApiToken.Scope.ADMIN
    write_role = Membership.Role.ADMIN
    write_scope = ApiToken.Scope.ADMIN


class EndpointOutput(serializers.ModelSerializer[WebhookEndpoint]):
    class Meta:
        model = WebhookEndpoint
        fields: ClassVar[list[str]] = [
            "id",
            "url",
            "description",
            "events",
            "is_active",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "last_success_at",
            "created_at",
        ]


class DeliveryOutput(serializers.ModelSerializer[WebhookDelivery]):
    delivery_id = serializers.UUIDField(source="uuid")

    class Meta:
        model = WebhookDelivery
        fields: ClassVar[list[str]] = [
            "id",
            "delivery_id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
        ]


SecretOutput = inline_serializer(
    "WebhookSecret",
    {"endpoint": EndpointOutput(), "secret": serializers.CharField()},
)


class WebhookEndpointListApi(AdminApi):
    """The workspace's endpoints; create one (the secret is returned once)."""

    class EndpointCreateInput(serializers.Serializer[Any]):
        url = serializers.CharField(max_length=2000)
        description = serializers.CharField(
            max_length=200, required=False, allow_blank=True, default=""
        )
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EVENT_CHOICES),
            required=False,
            default=list,
            max_length=len(EVENT_TYPES),
        )

    @extend_schema(operation_id="webhooks_list", responses=EndpointOutput(many=True))
    def get(self, request: Request) -> Response:
        endpoints = webhook_endpoints(self.membership)
        return Response(EndpointOutput(endpoints, many=True).data)

    @extend_schema(request=EndpointCreateInput, responses={201: SecretOutput})
    def post(self, request: Request) -> Response:
        payload = self.EndpointCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        created = create_webhook_endpoint(
            self.membership,
            url=data["url"],
            description=data["description"],
            events=data["events"],
        )
        body = {
            "endpoint": EndpointOutput(created.endpoint).data,
            "secret": created.secret,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailApi(AdminApi):
    """Read, change (url, description, events, active) or delete one endpoint."""

    class EndpointUpdateInput(serializers.Serializer[Any]):
        url = serializers.CharField(max_length=2000, required=False)
        description = serializers.CharField(
            max_length=200, required=False, allow_blank=True
        )
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EVENT_CHOICES),
            required=False,
            max_length=len(EVENT_TYPES),
        )
        is_active = serializers.BooleanField(required=False)

    @extend_schema(responses=EndpointOutput)
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = access_webhook_endpoint(self.membership, endpoint_id)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(request=EndpointUpdateInput, responses=EndpointOutput)
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = access_webhook_endpoint(self.membership, endpoint_id)
        payload = self.EndpointUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        endpoint = update_webhook_endpoint(
            self.membership,
            endpoint,
            url=data.get("url"),
            description=data.get("description"),
            events=data.get("events"),
        )
        if data.get("is_active") is True and not endpoint.is_active:
            endpoint = enable_webhook_endpoint(self.membership, endpoint)
        elif data.get("is_active") is False and endpoint.is_active:
            endpoint = disable_webhook_endpoint(self.membership, endpoint)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        endpoint = access_webhook_endpoint(self.membership, endpoint_id)
        delete_webhook_endpoint(self.membership, endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointSecretApi(AdminApi):
    """GET shows the current secret; POST rotates it (the old one signs for 24 h)."""

    @extend_schema(operation_id="webhooks_secret_retrieve", responses=SecretOutput)
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = access_webhook_endpoint(self.membership, endpoint_id)
        secret = reveal_webhook_secret(self.membership, endpoint)
        return Response({"endpoint": EndpointOutput(endpoint).data, "secret": secret})

    @extend_schema(
        operation_id="webhooks_secret_rotate", request=None, responses=SecretOutput
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = access_webhook_endpoint(self.membership, endpoint_id)
        secret = rotate_webhook_secret(self.membership, endpoint)
        return Response({"endpoint": EndpointOutput(endpoint).data, "secret": secret})


class WebhookEndpointPingApi(AdminApi):
    """Queue a signed `ping` to the endpoint; watch it in the delivery log."""

    @extend_schema(request=None, responses={202: DeliveryOutput})
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = access_webhook_endpoint(self.membership, endpoint_id)
        delivery = send_test_ping(self.membership, endpoint)
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(AdminApi):
    """The endpoint's delivery log, newest first (the latest 100, or by status)."""

    class DeliveryFilter(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=WebhookDelivery.Status.choices, required=False
        )

    @extend_schema(parameters=[DeliveryFilter], responses=DeliveryOutput(many=True))
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = access_webhook_endpoint(self.membership, endpoint_id)
        filters = self.DeliveryFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = endpoint_deliveries(
            endpoint, status=filters.validated_data.get("status")
        )[:100]
        return Response(DeliveryOutput(rows, many=True).data)
