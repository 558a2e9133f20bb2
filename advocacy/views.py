"""Pages of advocates (R14) and the competitor feed, under the reports.

Thin views: gate (tenant_view; access gates for one object), parse (a form),
one service or selector, render. The competitor chart is drawn by
`advocacy/js/competitors.js` from the volume API.
"""

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from advocacy.access import access_advocate_suggestion, access_competitor_rule
from advocacy.competitors import competitor_mentions, competitor_rules
from advocacy.forms import DecisionForm, FeedFilterForm
from advocacy.selectors import advocate_rows
from advocacy.services import decide_advocate, find_advocates_now
from tenants.decorators import tenant_view
from tenants.http import TenantRequest
from tenants.models import Membership

Role = Membership.Role


def _advocates_url(request: TenantRequest) -> str:
    return reverse("advocacy:advocates", args=[request.membership.tenant.slug])


@tenant_view()
def advocates(request: TenantRequest) -> HttpResponse:
    """Advocates and pending suggestions with reach, evidence, last interaction."""
    return _advocates_page(request, None)


def _advocates_page(request: TenantRequest, form: DecisionForm | None) -> HttpResponse:
    rows = advocate_rows(request.membership)
    context = {
        "pending": [row for row in rows if row.suggestion.status == "pending"],
        "confirmed": [row for row in rows if row.suggestion.status == "confirmed"],
        "can_decide": request.membership.has_role(Role.AGENT),
        "form": form,
    }
    status = 400 if form is not None and form.errors else 200
    return render(request, "advocacy/advocates.html", context, status=status)


@require_POST
@tenant_view(role=Role.AGENT)
def advocates_scan(request: TenantRequest) -> HttpResponse:
    """Look for advocates now (messages since the last scan); suggestions only."""
    outcome = find_advocates_now(request.membership)
    messages.success(
        request,
        f"Read {outcome.messages} messages: {outcome.suggested} new suggestion"
        f"{'s' if outcome.suggested != 1 else ''}.",
    )
    return HttpResponseRedirect(_advocates_url(request))


@require_POST
@tenant_view(role=Role.AGENT)
def advocate_decide(request: TenantRequest, suggestion_id: int) -> HttpResponse:
    """Confirm or dismiss one suggestion (audited)."""
    suggestion = access_advocate_suggestion(request.membership, suggestion_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _advocates_page(request, form)
    confirm = form.cleaned_data["decision"] == "confirm"
    decide_advocate(
        request.membership, suggestion, confirm=confirm, note=form.cleaned_data["note"]
    )
    name = suggestion.contact
    messages.success(
        request, f"{name} is an advocate." if confirm else f"{name} was dismissed."
    )
    return HttpResponseRedirect(_advocates_url(request))


@tenant_view()
def competitors(request: TenantRequest) -> HttpResponse:
    """The competitor feed: volume and sentiment over time, and the latest posts."""
    form = FeedFilterForm(request.GET)
    rule = None
    if form.is_valid() and form.cleaned_data["rule"]:
        try:
            rule = access_competitor_rule(request.membership, form.cleaned_data["rule"])
        except Http404:
            form.add_error("rule", "No competitor rule with this id in this workspace.")
    sentiment = form.cleaned_data.get("sentiment", "") if form.is_valid() else ""
    context = {
        "form": form,
        "rules": list(competitor_rules(request.membership)),
        "rule": rule,
        "sentiment": sentiment,
        "mentions": list(
            competitor_mentions(request.membership, rule=rule, sentiment=sentiment)[:50]
        ),
    }
    return render(
        request,
        "advocacy/competitors.html",
        context,
        status=400 if form.errors else 200,
    )
