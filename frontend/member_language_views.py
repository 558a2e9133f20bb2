"""The members page's language control: which languages a member answers in
(auto-assignment prefers them; helpdesk.services.assignment)."""

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from helpdesk.exceptions import HelpdeskError
from helpdesk.language import LANGUAGE_CHOICES, language_name
from helpdesk.services.assignment import set_member_languages
from tenants.access import access_member
from tenants.decorators import tenant_view
from tenants.forms import InvitationForm
from tenants.http import TenantRequest
from tenants.models import Membership
from tenants.selectors import pending_invitations, workspace_members

Role = Membership.Role


class MemberLanguagesForm(forms.Form):
    languages = forms.MultipleChoiceField(
        required=False,
        choices=LANGUAGE_CHOICES,
        error_messages={"invalid_choice": "%(value)s is not a language we detect."},
    )


@require_POST
@tenant_view(role=Role.AGENT)
def member_languages(request: TenantRequest, membership_id: int) -> HttpResponse:
    """Replace the member's languages (their own, or anyone's for admins)."""
    target = access_member(request.membership, membership_id)
    form = MemberLanguagesForm(request.POST)
    if form.is_valid():
        try:
            set_member_languages(
                request.membership,
                target=target,
                languages=form.cleaned_data["languages"],
            )
        except HelpdeskError as exc:
            form.add_error("languages", exc.message)
    if form.errors:
        return _members_page(request, target, form)
    names = [language_name(code) for code in target.languages]
    messages.success(
        request,
        f"{target.user.email} answers in {', '.join(names) or 'any language'}.",
    )
    return redirect("frontend:members", tenant_slug=request.tenant.slug)


def _members_page(
    request: TenantRequest, target: Membership, form: MemberLanguagesForm
) -> HttpResponse:
    """The members page again, with the form's errors under the member (400)."""
    context = {
        "form": InvitationForm(None),
        "members": workspace_members(request.membership),
        "invitations": pending_invitations(request.membership),
        "roles": Role.choices,
        "can_manage": request.membership.has_role(Role.ADMIN),
        "language_choices": LANGUAGE_CHOICES,
        "language_errors": {target.pk: form.errors["languages"]},
    }
    return render(request, "frontend/members.html", context, status=400)
