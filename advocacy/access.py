"""The gates of the advocacy app: one condition per line, 404 for non-members."""

from django.http import Http404

from advocacy.models import AdvocateSuggestion
from social.models import ListeningRule
from tenants.models import Membership


def access_advocate_suggestion(
    membership: Membership, suggestion_id: int
) -> AdvocateSuggestion:
    """The suggestion with this id in the member's workspace, or 404."""
    row = (
        AdvocateSuggestion.objects.select_related("contact")
        .filter(pk=suggestion_id)
        .first()
    )
    if row is None:
        raise Http404("No such advocate suggestion")
    if row.tenant_id != membership.tenant_id:
        raise Http404("No such advocate suggestion")
    return row


def access_competitor_rule(membership: Membership, rule_id: int) -> ListeningRule:
    """The competitor rule with this id in the member's workspace, or 404."""
    rule = ListeningRule.objects.select_related("brand").filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such competitor rule")
    if rule.tenant_id != membership.tenant_id:
        raise Http404("No such competitor rule")
    if not rule.competitor:
        raise Http404("No such competitor rule")
    return rule
