"""Forms of the agent UI: the inbox filters (a GET form; bad values are ignored)."""

from typing import Any

from django import forms

from helpdesk.language import LANGUAGE_CHOICES
from helpdesk.models import Conversation
from social.models import Platform
from tenants.models import Membership

ANY = [("", "Any")]


class InboxFilterForm(forms.Form):
    """The conversation list's filters. Choices come from the workspace's own rows,
    so an id from another workspace is simply not a valid choice."""

    status = forms.ChoiceField(
        required=False,
        choices=[*Conversation.Status.choices, ("all", "All")],
    )
    assignee = forms.ChoiceField(required=False, label="Assignee")
    brand = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    account = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    platform = forms.ChoiceField(required=False, choices=[*ANY, *Platform.choices])
    origin = forms.ChoiceField(
        required=False, choices=[*ANY, *Conversation.Origin.choices]
    )
    sentiment = forms.ChoiceField(
        required=False, choices=[*ANY, *Conversation.Sentiment.choices]
    )
    language = forms.ChoiceField(
        required=False, choices=[*ANY, *LANGUAGE_CHOICES, ("unknown", "Unknown")]
    )
    tag = forms.ChoiceField(required=False)

    def __init__(
        self,
        data: Any,
        *,
        membership: Membership,
        brands: list[Any],
        accounts: list[Any],
        members: list[Membership],
        tags: list[Any],
    ) -> None:
        super().__init__(data)
        self.membership = membership
        fields = self.fields
        fields["brand"].choices = [*ANY, *((b.pk, b.name) for b in brands)]  # type: ignore[attr-defined]
        fields["account"].choices = [  # type: ignore[attr-defined]
            *ANY,
            *((a.pk, f"@{a.handle} · {a.get_platform_display()}") for a in accounts),
        ]
        fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "Everyone"),
            ("me", "Mine"),
            ("none", "Unassigned"),
            *((str(m.user_id), m.user.public_name) for m in members),
        ]
        fields["tag"].choices = [*ANY, *((t.name, t.name) for t in tags)]  # type: ignore[attr-defined]

    def value(self, name: str) -> Any:
        """The cleaned value of a filter, or None when absent or invalid."""
        if not self.is_bound:
            return None
        self.is_valid()
        if name in self.errors:
            return None
        return self.cleaned_data.get(name) or None

    def chosen_status(self) -> str | None:
        chosen = self.value("status") or Conversation.Status.OPEN
        return None if chosen == "all" else chosen

    def selector_filters(self) -> dict[str, Any]:
        """Keyword arguments for inbox_conversations / inbox_counts (not status)."""
        assignee = self.value("assignee")
        assignee_id = None
        if assignee == "me":
            assignee_id = self.membership.user_id
        elif assignee not in (None, "none"):
            assignee_id = int(assignee)
        return {
            "brand_id": self.value("brand"),
            "account_id": self.value("account"),
            "platform": self.value("platform"),
            "origin": self.value("origin"),
            "assignee_id": assignee_id,
            "unassigned": assignee == "none",
            "sentiment": self.value("sentiment"),
            "language": (
                "" if self.value("language") == "unknown" else self.value("language")
            ),
            "tag": self.value("tag"),
        }

    def active_count(self) -> int:
        """How many of the secondary filters (not status or assignee) are set."""
        names = ["brand", "account", "platform", "origin", "sentiment", "language"]
        names.append("tag")
        return sum(1 for name in names if self.value(name) is not None)

    def status_tabs(self, counts: dict[str, int]) -> list[dict[str, Any]]:
        """The status tabs: value, label, count, whether chosen, and their link."""
        chosen = self.value("status") or Conversation.Status.OPEN
        return [
            {
                "value": value,
                "label": label,
                "count": counts.get(value, 0),
                "active": value == chosen,
                "query": self.query(status=value),
            }
            for value, label in self.fields["status"].choices  # type: ignore[attr-defined]
        ]

    def query(self, **overrides: str) -> str:
        """The current filters as a query string, with some values replaced."""
        from django.http import QueryDict

        query = QueryDict(mutable=True)
        for name in self.fields:
            raw = overrides.get(name, self.data.get(name, "") if self.is_bound else "")
            if raw:
                query[name] = raw
        return query.urlencode()
