"""API routes of spike alerts, under /api/v1/t/<tenant_slug>/."""

from django.urls import path

from spikes import api

urlpatterns = [
    path("alerts/", api.SpikeAlertListApi.as_view(), name="spike-alert-list"),
    path(
        "alerts/<int:alert_id>/acknowledge/",
        api.SpikeAlertAcknowledgeApi.as_view(),
        name="spike-alert-acknowledge",
    ),
]
