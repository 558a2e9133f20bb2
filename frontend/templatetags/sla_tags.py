"""The SLA badge of a conversation, for the inbox rows and the thread header."""

from django import template
from django.utils import timezone

from frontend.presenters import SlaBadge, sla_badge
from helpdesk.models import Conversation

register = template.Library()


@register.filter
def sla(conversation: Conversation) -> SlaBadge | None:
    """`{% with badge=row|sla %}`: the badge now, or None when no clock counts."""
    return sla_badge(conversation, timezone.now())
