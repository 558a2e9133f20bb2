"""API routes of advocates and the competitor feed, under /api/v1/t/<tenant_slug>/."""

from django.urls import path

from advocacy import api

urlpatterns = [
    path("advocates/", api.AdvocateListApi.as_view(), name="advocate-list"),
    path("advocates/scan/", api.AdvocateScanApi.as_view(), name="advocate-scan"),
    path(
        "advocates/<int:suggestion_id>/confirm/",
        api.AdvocateConfirmApi.as_view(),
        name="advocate-confirm",
    ),
    path(
        "advocates/<int:suggestion_id>/dismiss/",
        api.AdvocateDismissApi.as_view(),
        name="advocate-dismiss",
    ),
    path(
        "competitors/mentions/",
        api.CompetitorMentionListApi.as_view(),
        name="competitor-mention-list",
    ),
    path(
        "competitors/volume/",
        api.CompetitorVolumeApi.as_view(),
        name="competitor-volume",
    ),
]
