"""REST API of the care reports (R9, R10): figures, charts' data and CSV exports.

Every endpoint reads (viewers and read-scope tokens may call it) and takes the
same filters as query parameters (`ReportQuery`): `start` and `end` (ISO dates,
both included; by default the 30 days ending today), `brand`, `account`,
`platform`, `agent` (ids of this workspace; another workspace's id is a field
error, like an id that does not exist) and `compare` (the previous period of
the same length beside the summary; on by default). The figures come from the
selectors of helpdesk.reports, which read the hourly rollups, never messages.

The two CSVs are streamed (helpdesk/streaming.py): their rows are read while
they are sent. Their columns are documented in helpdesk/services/exports.py.
"""

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.reports import (
    SUMMARY_FIELDS,
    ReportFilters,
    report_agents,
    report_conversation_rows,
    report_fairness,
    report_heatmap,
    report_summary,
    report_timeseries,
)
from helpdesk.services.exports import aggregate_csv, conversation_csv
from helpdesk.streaming import TenantStreamingResponse, in_tenant
from social.models import Platform, SocialAccount
from tenants.api_fields import BrandIdField
from tenants.models import Brand, Membership
from tenants.permissions import TenantScopedApi
from tenants.selectors import workspace_members

DEFAULT_DAYS = 30
MAX_DAYS = 366
MAX_ID = 2**63 - 1
# Reports start no earlier than this and end no later than that: far dates have
# no data, and the previous period and day bounds must stay representable.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)


class ReportQuery(serializers.Serializer[Any]):
    """The filters of every report endpoint; validates to a ReportFilters
    (`filters`) and `compare`. Needs `membership` in the context."""

    start = serializers.DateField(
        required=False,
        help_text="First day of the period (ISO date). Default: 29 days before `end`.",
    )
    end = serializers.DateField(
        required=False,
        help_text="Last day of the period, included (ISO date). Default: today.",
    )
    brand = BrandIdField(required=False, max_value=MAX_ID)
    account = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    platform = serializers.ChoiceField(choices=Platform.choices, required=False)
    agent = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="The user id of a member of this workspace.",
    )
    compare = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Include the previous period of the same length (summary).",
    )

    def validate_start(self, value: date) -> date:
        return _within_range(value)

    def validate_end(self, value: date) -> date:
        return _within_range(value)

    def validate_account(self, value: int) -> int:
        if not SocialAccount.objects.filter(pk=value).exists():
            raise serializers.ValidationError("No such account in this workspace.")
        return value

    def validate_agent(self, value: int) -> int:
        membership: Membership = self.context["membership"]
        if not workspace_members(membership).filter(user_id=value).exists():
            raise serializers.ValidationError("No such member in this workspace.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        brand: Brand | None = attrs.get("brand")
        zone = ZoneInfo(brand.timezone if brand is not None else "UTC")
        end: date = attrs.get("end") or timezone.now().astimezone(zone).date()
        start: date = attrs.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if end < start:
            raise serializers.ValidationError({"end": "The end is before the start."})
        if (end - start).days + 1 > MAX_DAYS:
            raise serializers.ValidationError(
                {"end": f"A report covers at most {MAX_DAYS} days."}
            )
        attrs["filters"] = ReportFilters(
            start=start,
            end=end,
            brand_id=brand.pk if brand is not None else None,
            account_id=attrs.get("account"),
            platform=attrs.get("platform"),
            agent_id=attrs.get("agent"),
        )
        return attrs


def _within_range(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise serializers.ValidationError(f"Pick a day from {FIRST_DAY} to {LAST_DAY}.")
    return value


COUNTS = (
    "conversations",
    "needing_reply",
    "answered",
    "no_reply",
    "unanswered",
    "breaches",
    "inbound",
)


def _figure_fields() -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    """The summary's figures: counts are integers; rates and shares (fractions of
    1) and durations (seconds) are numbers, null when nothing was measured."""
    return {
        name: serializers.IntegerField()
        if name in COUNTS
        else serializers.FloatField(allow_null=True)
        for name in SUMMARY_FIELDS
    }


class SummaryChangeOutput(serializers.Serializer[Any]):
    """period - previous, figure by figure."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return _figure_fields()


class SummaryFiguresOutput(SummaryChangeOutput):
    """One period's figures (helpdesk.reports.report_summary)."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            "start": serializers.DateField(),
            "end": serializers.DateField(),
            **_figure_fields(),
        }


class SummaryOutput(serializers.Serializer[Any]):
    period = SummaryFiguresOutput()
    previous = SummaryFiguresOutput(
        allow_null=True, help_text="The previous period (null with compare off)."
    )
    change = SummaryChangeOutput(
        allow_null=True, help_text="period - previous (null with compare off)."
    )


class TimeseriesDayOutput(serializers.Serializer[Any]):
    date = serializers.DateField()
    inbound = serializers.IntegerField()
    inbound_by_platform = serializers.DictField(child=serializers.IntegerField())
    inbound_by_origin = serializers.DictField(child=serializers.IntegerField())
    inbound_by_sentiment = serializers.DictField(child=serializers.IntegerField())
    first_response_p50 = serializers.FloatField(allow_null=True)
    first_response_p90 = serializers.FloatField(allow_null=True)
    target_seconds = serializers.IntegerField()


class AgentOutput(serializers.Serializer[Any]):
    agent_id = serializers.IntegerField()
    display_name = serializers.CharField()
    email = serializers.CharField()
    answered = serializers.IntegerField()
    first_response_p50 = serializers.FloatField(allow_null=True)
    public_replies = serializers.IntegerField()
    private_moves = serializers.IntegerField()
    no_reply = serializers.IntegerField()


class FairnessBandOutput(serializers.Serializer[Any]):
    answered = serializers.IntegerField()
    first_response_p50 = serializers.FloatField(allow_null=True)
    first_response_p90 = serializers.FloatField(allow_null=True)


class FairnessBandsOutput(serializers.Serializer[Any]):
    small = FairnessBandOutput(help_text="Authors with under 100 followers.")
    medium = FairnessBandOutput(help_text="100 to 10k followers.")
    large = FairnessBandOutput(help_text="Over 10k followers.")


class FairnessOutput(serializers.Serializer[Any]):
    bands = FairnessBandsOutput()
    ratio = serializers.FloatField(
        allow_null=True, help_text="Slowest band's p90 over the fastest band's."
    )
    flagged = serializers.BooleanField(help_text="The ratio exceeds 1.2.")


class HeatmapOutput(serializers.Serializer[Any]):
    timezone = serializers.CharField()
    inbound = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="7 weekdays (Monday first) x 24 hours of inbound messages.",
    )
    staffed = serializers.ListField(
        child=serializers.ListField(child=serializers.BooleanField()),
        help_text="7 x 24: whether the hour overlaps business hours.",
    )


class ReportApi(TenantScopedApi):
    """Base of the report endpoints: parses the filters once."""

    def report_query(self, request: Request) -> dict[str, Any]:
        query = ReportQuery(
            data=request.query_params, context={"membership": self.membership}
        )
        query.is_valid(raise_exception=True)
        data: dict[str, Any] = query.validated_data
        return data


def summary_report(membership: Membership, query: dict[str, Any]) -> dict[str, Any]:
    """report_summary, without the previous period when `compare` is off."""
    summary = report_summary(membership, query["filters"])
    if not query["compare"]:
        summary = {**summary, "previous": None, "change": None}
    return summary


class ReportSummaryApi(ReportApi):
    """The headline figures for the period and, with `compare`, the previous
    period and the change."""

    @extend_schema(
        operation_id="reports_summary",
        parameters=[ReportQuery],
        responses=SummaryOutput,
    )
    def get(self, request: Request) -> Response:
        query = self.report_query(request)
        summary = summary_report(self.membership, query)
        return Response(SummaryOutput(summary).data)


class ReportTimeseriesApi(ReportApi):
    """The figures per day of the period (volume, first-response p50 and p90)."""

    @extend_schema(
        operation_id="reports_timeseries",
        parameters=[ReportQuery],
        responses=TimeseriesDayOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        query = self.report_query(request)
        days = report_timeseries(self.membership, query["filters"])
        return Response(TimeseriesDayOutput(days, many=True).data)


class ReportAgentsApi(ReportApi):
    """The per-agent table."""

    @extend_schema(
        operation_id="reports_agents",
        parameters=[ReportQuery],
        responses=AgentOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        query = self.report_query(request)
        agents = report_agents(self.membership, query["filters"])
        return Response(AgentOutput(agents, many=True).data)


class ReportFairnessApi(ReportApi):
    """First-response times by follower band, and the slowest-to-fastest ratio
    (flagged above 1.2)."""

    @extend_schema(
        operation_id="reports_fairness",
        parameters=[ReportQuery],
        responses=FairnessOutput,
    )
    def get(self, request: Request) -> Response:
        query = self.report_query(request)
        fairness = report_fairness(self.membership, query["filters"])
        return Response(FairnessOutput(fairness).data)


class ReportHeatmapApi(ReportApi):
    """Inbound volume by hour of the week, against staffed hours."""

    @extend_schema(
        operation_id="reports_heatmap",
        parameters=[ReportQuery],
        responses=HeatmapOutput,
    )
    def get(self, request: Request) -> Response:
        query = self.report_query(request)
        heatmap = report_heatmap(self.membership, query["filters"])
        return Response(HeatmapOutput(heatmap).data)


CSV_RESPONSE = {
    (200, "text/csv"): OpenApiResponse(
        OpenApiTypes.STR, description="CSV, header row first."
    )
}


class CsvReportApi(ReportApi):
    """Base of the CSV endpoints. Errors stay JSON whatever the client accepts,
    so `Accept: text/csv` is not refused (406) but answered."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)

    def csv_response(
        self, name: str, filters: ReportFilters, chunks: Iterator[str]
    ) -> TenantStreamingResponse:
        response = TenantStreamingResponse(
            chunks, content_type="text/csv; charset=utf-8"
        )
        filename = f"{self.tenant.slug}-{name}-{filters.start}-{filters.end}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "private, no-store"
        return response


class ReportAggregatesCsvApi(CsvReportApi):
    """aggregates.csv: the summary, per-day, per-agent and fairness figures, one
    figure per row (columns: helpdesk/services/exports.py). The figures are read
    before the answer starts (they are small); only the writing is streamed."""

    @extend_schema(
        operation_id="reports_aggregates_csv",
        parameters=[ReportQuery],
        responses=CSV_RESPONSE,
    )
    def get(self, request: Request) -> TenantStreamingResponse:
        query = self.report_query(request)
        filters: ReportFilters = query["filters"]
        summary = summary_report(self.membership, query)
        chunks = aggregate_csv(
            summary=summary,
            days=report_timeseries(self.membership, filters),
            agents=report_agents(self.membership, filters),
            fairness=report_fairness(self.membership, filters),
        )
        return self.csv_response("aggregates", filters, chunks)


class ReportConversationsCsvApi(CsvReportApi):
    """conversations.csv: one row per conversation whose demand began in the
    period (columns: helpdesk/services/exports.py). Streamed: the rows are read
    from the database while the answer is sent, in the workspace's context."""

    @extend_schema(
        operation_id="reports_conversations_csv",
        parameters=[ReportQuery],
        responses=CSV_RESPONSE,
    )
    def get(self, request: Request) -> TenantStreamingResponse:
        query = self.report_query(request)
        filters: ReportFilters = query["filters"]
        membership = self.membership

        def rows() -> Iterator[str]:
            names = {
                member.user_id: member.user.display_name or member.user.email
                for member in workspace_members(membership)
            }
            return conversation_csv(
                report_conversation_rows(membership, filters), agent_names=names
            )

        return self.csv_response("conversations", filters, in_tenant(self.tenant, rows))
