"""Forms for sign-up extras, invitations, members and brands."""

from typing import Any, ClassVar

from django import forms
from django.contrib.auth import password_validation
from django.http import HttpRequest

from tenants.models import ApiToken, Membership, User, validate_timezone


class WorkspaceSignupForm(forms.Form):
    """The extra field allauth's sign-up form carries: the new workspace's name."""

    workspace_name = forms.CharField(
        max_length=120,
        label="Workspace name",
        help_text="Usually your company's name. You can add brands later.",
        widget=forms.TextInput(attrs={"placeholder": "Acme Air"}),
    )

    def clean_workspace_name(self) -> str:
        name = str(self.cleaned_data["workspace_name"]).strip()
        if not name:
            raise forms.ValidationError("Give your workspace a name.")
        return name

    def signup(self, request: HttpRequest, user: User) -> None:
        """allauth hook; the adapter's save_user already created the workspace."""


class InvitationForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(
        choices=Membership.Role.choices, initial=Membership.Role.AGENT
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class BrandForm(forms.Form):
    name = forms.CharField(max_length=120)
    timezone = forms.CharField(
        max_length=64, initial="UTC", validators=[validate_timezone]
    )


class DeleteWorkspaceForm(forms.Form):
    confirm_name = forms.CharField(label="Type the workspace name to confirm")


class InvitedSignupForm(forms.Form):
    """Account creation for someone who followed an invitation link."""

    display_name = forms.CharField(max_length=80, label="Your name")
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput)
    password2 = forms.CharField(label="Password (again)", widget=forms.PasswordInput)

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords do not match.")
        elif first:
            try:
                password_validation.validate_password(first, User(email=self.email))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        if User.objects.filter(email__iexact=self.email).exists():
            raise forms.ValidationError(
                f"An account for {self.email} exists already. Log in to accept."
            )
        return data


class ApiTokenForm(forms.Form):
    """A new personal API token; the scopes offered are those the member's role
    can use (write needs an agent, admin an admin)."""

    name = forms.CharField(
        max_length=80,
        help_text="What uses it, e.g. “CRM sync”.",
        widget=forms.TextInput(attrs={"placeholder": "CRM sync"}),
    )
    scope = forms.ChoiceField(
        choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ
    )

    ROLE_FOR_SCOPE: ClassVar[dict[str, Membership.Role]] = {
        ApiToken.Scope.READ: Membership.Role.VIEWER,
        ApiToken.Scope.WRITE: Membership.Role.AGENT,
        ApiToken.Scope.ADMIN: Membership.Role.ADMIN,
    }

    def __init__(self, *args: Any, membership: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scope"].choices = [  # type: ignore[attr-defined]
            (value, label)
            for value, label in ApiToken.Scope.choices
            if membership.has_role(self.ROLE_FOR_SCOPE[value])
        ]
