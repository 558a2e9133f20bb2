"""Forms of the connected-accounts page: Mastodon and Bluesky connect."""

from typing import Any

from django import forms
from django.db.models import QuerySet

from tenants.models import Brand


class _BrandForm(forms.Form):
    """A form whose first field picks one of the workspace's brands (the choices
    are given per request: brands exist only inside a tenant)."""

    def __init__(self, *args: Any, brands: QuerySet[Brand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        brand = forms.ModelChoiceField(queryset=brands, empty_label=None)
        self.fields = {"brand": brand, **self.fields}


class MastodonConnectForm(_BrandForm):
    """The Mastodon server an admin's account lives on."""

    prefix = "mastodon"
    instance = forms.CharField(
        max_length=255,
        label="Mastodon server",
        help_text="The address of the server the account is on, such as "
        "mastodon.social.",
        widget=forms.TextInput(attrs={"placeholder": "mastodon.social"}),
    )


class BlueskyConnectForm(_BrandForm):
    """A Bluesky handle and an app password for it."""

    prefix = "bluesky"
    handle = forms.CharField(
        max_length=253,
        label="Bluesky handle",
        widget=forms.TextInput(attrs={"placeholder": "acme.bsky.social"}),
    )
    app_password = forms.CharField(
        max_length=64,
        label="App password",
        help_text="Create one in Bluesky under Settings → Privacy and security → "
        "App passwords, with access to direct messages.",
        widget=forms.PasswordInput(),
    )

    def clean_handle(self) -> str:
        return str(self.cleaned_data["handle"]).strip().removeprefix("@")
