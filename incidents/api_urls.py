"""API routes of incidents; helpdesk/api_urls.py adds them under /api/v1/t/<slug>/."""

from django.urls import path

from incidents import api

urlpatterns = [
    path("incidents/", api.IncidentListApi.as_view(), name="incident-list"),
    path(
        "incidents/<int:incident_id>/",
        api.IncidentDetailApi.as_view(),
        name="incident-detail",
    ),
    path(
        "incidents/<int:incident_id>/links/",
        api.IncidentLinkApi.as_view(),
        name="incident-link",
    ),
    path(
        "incidents/<int:incident_id>/links/<int:conversation_id>/",
        api.IncidentUnlinkApi.as_view(),
        name="incident-unlink",
    ),
    path(
        "incidents/<int:incident_id>/notes/",
        api.IncidentNoteApi.as_view(),
        name="incident-note",
    ),
    path(
        "incidents/<int:incident_id>/holding-statement/",
        api.IncidentHoldingStatementApi.as_view(),
        name="incident-holding-statement",
    ),
    path(
        "incidents/<int:incident_id>/preview/",
        api.IncidentPreviewApi.as_view(),
        name="incident-preview",
    ),
    path(
        "incidents/<int:incident_id>/updates/",
        api.IncidentUpdateListApi.as_view(),
        name="incident-update-list",
    ),
    path(
        "incidents/<int:incident_id>/updates/<int:update_id>/",
        api.IncidentUpdateDetailApi.as_view(),
        name="incident-update-detail",
    ),
    path(
        "incidents/<int:incident_id>/updates/<int:update_id>/retry/",
        api.IncidentUpdateRetryApi.as_view(),
        name="incident-update-retry",
    ),
    path(
        "incidents/<int:incident_id>/close/",
        api.IncidentCloseApi.as_view(),
        name="incident-close",
    ),
]
