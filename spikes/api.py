"""REST API of spike alerts (R13), under /api/v1/t/<slug>/alerts/.

Every member may list alerts and acknowledge one (a write: a token needs the
write scope).
"""

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from spikes.access import access_alert
from spikes.models import SpikeAlert
from spikes.selectors import workspace_alerts
from spikes.services import acknowledge_alert
from tenants.models import Membership
from tenants.permissions import TenantScopedApi

LIST_LIMIT = 100


class SpikeAlertOutput(serializers.ModelSerializer[SpikeAlert]):
    top_terms = serializers.SerializerMethodField()
    acknowledged_by = serializers.SerializerMethodField()
    window_minutes = serializers.SerializerMethodField()

    class Meta:
        model = SpikeAlert
        fields: ClassVar[list[str]] = [
            "id",
            "brand_id",
            "status",
            "window_start",
            "window_minutes",
            "count",
            "peak_count",
            "baseline",
            "threshold",
            "by_sentiment",
            "by_rule",
            "top_terms",
            "sample_message_ids",
            "opened_at",
            "last_seen_at",
            "closed_at",
            "acknowledged_at",
            "acknowledged_by",
        ]

    def get_top_terms(self, alert: SpikeAlert) -> list[dict[str, Any]]:
        return [{"term": term, "messages": n} for term, n in alert.top_terms]

    def get_acknowledged_by(self, alert: SpikeAlert) -> str | None:
        user = alert.acknowledged_by
        return user.email if user is not None else None

    def get_window_minutes(self, alert: SpikeAlert) -> int:
        return 5


class SpikeAlertListApi(TenantScopedApi):
    """The workspace's spike alerts, newest first (at most 100; every member)."""

    class AlertFilter(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=SpikeAlert.Status.choices, required=False
        )
        brand = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(parameters=[AlertFilter], responses=SpikeAlertOutput(many=True))
    def get(self, request: Request) -> Response:
        query = self.AlertFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        alerts = workspace_alerts(
            self.membership, status=query.validated_data.get("status")
        )
        if "brand" in query.validated_data:
            alerts = alerts.filter(brand_id=query.validated_data["brand"])
        return Response(SpikeAlertOutput(alerts[:LIST_LIMIT], many=True).data)


class SpikeAlertAcknowledgeApi(TenantScopedApi):
    """Acknowledge a spike alert (every member; the first acknowledgement stays)."""

    write_role = Membership.Role.VIEWER

    @extend_schema(request=None, responses=SpikeAlertOutput)
    def post(self, request: Request, alert_id: int) -> Response:
        alert = access_alert(self.membership, alert_id)
        updated = acknowledge_alert(alert, membership=self.membership)
        return Response(SpikeAlertOutput(updated).data)
