"""REST API of advocates (R14) and the competitor feed, under /api/v1/t/<slug>/.

Reads are open to every member (token scope read). The scan and the decisions
need the agent role and a write-scope token.
"""

from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from advocacy.access import access_advocate_suggestion, access_competitor_rule
from advocacy.competitors import competitor_mentions, competitor_volume
from advocacy.models import AdvocateEvidence, AdvocateSuggestion, CompetitorMention
from advocacy.selectors import AdvocateRow, advocate_rows
from advocacy.services import decide_advocate, find_advocates_now
from helpdesk.api_contacts import IdentityOutput
from social.models import ListeningRule
from tenants.api_fields import BrandRefOutput
from tenants.models import Membership
from tenants.permissions import TenantScopedApi

Status = AdvocateSuggestion.Status
# The longest period of the hourly chart, and of the daily one.
MAX_HOURS = 14 * 24
MAX_DAYS = 366
# The days a period may name (far enough out for any report, and no date overflow).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


class EvidenceOutput(serializers.ModelSerializer[AdvocateEvidence]):
    message_id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    text = serializers.CharField(source="message.text")
    visibility = serializers.CharField(source="message.visibility")

    class Meta:
        model = AdvocateEvidence
        fields: ClassVar[list[str]] = [
            "kind",
            "message_id",
            "conversation_id",
            "text",
            "visibility",
            "sent_at",
        ]


class ContactRefOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    display_name = serializers.CharField()


class AdvocateOutput(serializers.Serializer[AdvocateRow]):
    id = serializers.IntegerField(source="suggestion.pk")
    status = serializers.ChoiceField(source="suggestion.status", choices=Status.choices)
    contact = ContactRefOutput(source="suggestion.contact")
    positive_count = serializers.IntegerField(source="suggestion.positive_count")
    defence_count = serializers.IntegerField(source="suggestion.defence_count")
    last_evidence_at = serializers.DateTimeField(source="suggestion.last_evidence_at")
    suggested_at = serializers.DateTimeField(source="suggestion.suggested_at")
    decided_at = serializers.DateTimeField(source="suggestion.decided_at")
    followers = serializers.IntegerField(
        help_text="The largest audience among the contact's identities."
    )
    total_followers = serializers.IntegerField()
    band = serializers.CharField(help_text="small, medium or large (R10's bands).")
    identities = IdentityOutput(many=True)
    evidence = EvidenceOutput(many=True)
    last_interaction_at = serializers.DateTimeField(allow_null=True)


class AdvocateListApi(TenantScopedApi):
    """Advocates and pending suggestions with reach, evidence and last
    interaction (every member)."""

    class AdvocateFilter(serializers.Serializer[Any]):
        status = serializers.MultipleChoiceField(
            choices=Status.choices,
            required=False,
            help_text="Repeat to combine; default: pending and confirmed.",
        )

    @extend_schema(parameters=[AdvocateFilter], responses=AdvocateOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.AdvocateFilter(
            data={"status": request.query_params.getlist("status")}
            if "status" in request.query_params
            else {}
        )
        filters.is_valid(raise_exception=True)
        statuses = tuple(
            filters.validated_data.get("status") or (Status.PENDING, Status.CONFIRMED)
        )
        rows = advocate_rows(self.membership, statuses=statuses)
        return Response(AdvocateOutput(rows, many=True).data)  # type: ignore[arg-type]


class AdvocateScanApi(TenantScopedApi):
    """Look for advocates now (agents): the hourly task's work, from the messages
    since the last scan. Suggests only: a person confirms each one."""

    class ScanOutput(serializers.Serializer[Any]):
        messages = serializers.IntegerField()
        evidence = serializers.IntegerField()
        suggested = serializers.IntegerField()
        refreshed = serializers.IntegerField()

    @extend_schema(request=None, responses=ScanOutput)
    def post(self, request: Request) -> Response:
        outcome = find_advocates_now(self.membership)
        return Response(self.ScanOutput(outcome).data)


class DecisionInput(serializers.Serializer[Any]):
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=500, default=""
    )


class SuggestionOutput(serializers.ModelSerializer[AdvocateSuggestion]):
    contact = ContactRefOutput()

    class Meta:
        model = AdvocateSuggestion
        fields: ClassVar[list[str]] = [
            "id",
            "status",
            "contact",
            "positive_count",
            "defence_count",
            "decided_at",
            "decision_note",
        ]


class AdvocateConfirmApi(TenantScopedApi):
    """Confirm a suggested contact as an advocate (agents; audited)."""

    @extend_schema(request=DecisionInput, responses=SuggestionOutput)
    def post(self, request: Request, suggestion_id: int) -> Response:
        return _decide(self.membership, request, suggestion_id, confirm=True)


class AdvocateDismissApi(TenantScopedApi):
    """Dismiss a suggestion (agents; audited). The contact is suggested again
    only when new evidence arrives."""

    @extend_schema(request=DecisionInput, responses=SuggestionOutput)
    def post(self, request: Request, suggestion_id: int) -> Response:
        return _decide(self.membership, request, suggestion_id, confirm=False)


def _decide(
    membership: Membership, request: Request, suggestion_id: int, *, confirm: bool
) -> Response:
    suggestion = access_advocate_suggestion(membership, suggestion_id)
    payload = DecisionInput(data=request.data)
    payload.is_valid(raise_exception=True)
    row = decide_advocate(
        membership, suggestion, confirm=confirm, note=payload.validated_data["note"]
    )
    return Response(SuggestionOutput(row).data)


class CompetitorFilter(serializers.Serializer[Any]):
    """A period of whole days (default: the last 30, or the last 2 by the hour),
    optionally one rule."""

    rule = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False, help_text="Included.")

    def validate_start(self, value: date) -> date:
        return _in_range(value)

    def validate_end(self, value: date) -> date:
        return _in_range(value)

    sentiment = serializers.ChoiceField(
        required=False, choices=CompetitorMention.Sentiment.choices
    )
    bucket = serializers.ChoiceField(
        required=False, choices=[("day", "day"), ("hour", "hour")], default="day"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = timezone.localdate()
        end = attrs.get("end") or today
        hourly = attrs.get("bucket") == "hour"
        start = attrs.get("start") or end - timedelta(days=1 if hourly else 29)
        if start > end:
            raise serializers.ValidationError({"start": ["Start after the end."]})
        days = (end - start).days + 1
        if hourly and days * 24 > MAX_HOURS:
            raise serializers.ValidationError(
                {"bucket": [f"Hours are shown for at most {MAX_HOURS // 24} days."]}
            )
        if days > MAX_DAYS:
            raise serializers.ValidationError(
                {"start": [f"At most {MAX_DAYS} days at a time."]}
            )
        tz = timezone.get_current_timezone()
        attrs["since"] = datetime.combine(start, time.min, tzinfo=tz)
        attrs["until"] = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
        return attrs


def _in_range(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise serializers.ValidationError(
            f"Choose a day from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}."
        )
    return value


def _rule(membership: Membership, filters: CompetitorFilter) -> ListeningRule | None:
    rule_id = filters.validated_data.get("rule")
    if rule_id is None:
        return None
    try:
        return access_competitor_rule(membership, rule_id)
    except Http404:
        raise serializers.ValidationError(
            {"rule": ["No competitor rule with this id in this workspace."]}
        ) from None


class RuleRefOutput(serializers.ModelSerializer[ListeningRule]):
    class Meta:
        model = ListeningRule
        fields: ClassVar[list[str]] = ["id", "name"]


class CompetitorMentionOutput(serializers.ModelSerializer[CompetitorMention]):
    rule = RuleRefOutput()
    brand = BrandRefOutput()

    class Meta:
        model = CompetitorMention
        fields: ClassVar[list[str]] = [
            "id",
            "rule",
            "brand",
            "platform",
            "external_id",
            "external_url",
            "author_handle",
            "author_name",
            "author_followers",
            "text",
            "language",
            "sentiment",
            "posted_at",
        ]


class CompetitorMentionListApi(TenantScopedApi):
    """The competitor feed: posts matched by competitor rules, newest first (at
    most 200). These never reach the inbox."""

    @extend_schema(
        parameters=[CompetitorFilter], responses=CompetitorMentionOutput(many=True)
    )
    def get(self, request: Request) -> Response:
        filters = CompetitorFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = competitor_mentions(
            self.membership,
            rule=_rule(self.membership, filters),
            sentiment=filters.validated_data.get("sentiment", ""),
            start=filters.validated_data["since"],
            end=filters.validated_data["until"],
        )[:200]
        return Response(CompetitorMentionOutput(rows, many=True).data)


class VolumePointOutput(serializers.Serializer[Any]):
    at = serializers.DateTimeField()
    negative = serializers.IntegerField()
    neutral = serializers.IntegerField()
    positive = serializers.IntegerField()
    total = serializers.IntegerField()


class RuleVolumeOutput(serializers.Serializer[Any]):
    rule = RuleRefOutput()
    brand = BrandRefOutput(source="rule.brand")
    points = VolumePointOutput(many=True)


class CompetitorVolumeApi(TenantScopedApi):
    """Mentions per competitor rule per day or hour, split by sentiment, every
    bucket of the period present."""

    @extend_schema(parameters=[CompetitorFilter], responses=RuleVolumeOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = CompetitorFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        series = competitor_volume(
            self.membership,
            start=filters.validated_data["since"],
            end=filters.validated_data["until"],
            bucket=filters.validated_data["bucket"],
            rule=_rule(self.membership, filters),
        )
        return Response(RuleVolumeOutput(series, many=True).data)
