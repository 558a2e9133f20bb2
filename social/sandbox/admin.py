"""The Sandbox's outage switch on the operator admin (/admin/: an operator's
drill; the network is a stand-in platform, not workspace data)."""

from django.contrib import admin

from social.sandbox.models import Outage
from tenants.admin import operator_site


@admin.register(Outage, site=operator_site)
class OutageAdmin(admin.ModelAdmin[Outage]):
    list_display = ("mode", "retry_after", "started_at", "until")
