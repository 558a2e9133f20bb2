"""Forms of the advocacy pages (the API has its own serializers)."""

from django import forms


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("confirm", "Confirm as advocate"), ("dismiss", "Dismiss")],
        error_messages={"invalid_choice": "Choose confirm or dismiss."},
    )
    note = forms.CharField(required=False, max_length=500, strip=True)


class FeedFilterForm(forms.Form):
    rule = forms.IntegerField(required=False, min_value=1)
    sentiment = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any sentiment"),
            ("negative", "Negative"),
            ("neutral", "Neutral"),
            ("positive", "Positive"),
        ],
    )
