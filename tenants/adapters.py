"""allauth adapter: sign-up creates the workspace; redirects land in it."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from tenants.models import User
from tenants.services import create_workspace

SIGNUP_SLUG_KEY = "earshot_signup_workspace"


class WorkspaceAccountAdapter(DefaultAccountAdapter):
    def save_user(
        self, request: HttpRequest, user: User, form: Any, commit: bool = True
    ) -> User:
        """Create the user and, in the same transaction, their workspace."""
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=True)
            membership = create_workspace(
                owner=user, name=form.cleaned_data["workspace_name"]
            )
        request.session[SIGNUP_SLUG_KEY] = membership.tenant.slug
        return user

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        slug = request.session.pop(SIGNUP_SLUG_KEY, None)
        if slug:
            return reverse("frontend:workspace", kwargs={"tenant_slug": slug})
        return reverse("frontend:home")
