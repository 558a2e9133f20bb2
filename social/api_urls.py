"""API routes of the social layer, mounted under /api/v1/t/<tenant_slug>/."""

from django.urls import path

from social import api

urlpatterns = [
    path("accounts/", api.SocialAccountListApi.as_view(), name="social-account-list"),
    path(
        "accounts/<int:account_id>/",
        api.SocialAccountDetailApi.as_view(),
        name="social-account-detail",
    ),
    path(
        "listening-rules/",
        api.ListeningRuleListApi.as_view(),
        name="listening-rule-list",
    ),
    path(
        "listening-rules/test/",
        api.ListeningRuleTestApi.as_view(),
        name="listening-rule-test",
    ),
    path(
        "listening-rules/<int:rule_id>/",
        api.ListeningRuleDetailApi.as_view(),
        name="listening-rule-detail",
    ),
]
