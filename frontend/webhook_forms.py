"""The webhook endpoint form of the settings page (the services do the real checks)."""

from django import forms

from helpdesk.services.webhook_outbox import EVENT_TYPES


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=2000,
        widget=forms.URLInput(
            attrs={"placeholder": "https://example.com/hooks/earshot"}
        ),
    )
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(
        choices=[(event, event) for event in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave every box unticked to receive all events.",
    )
