"""API routes of the workspace, mounted under /api/v1/t/<tenant_slug>/."""

from django.urls import path

from tenants import api

urlpatterns = [
    path("brands/", api.BrandListApi.as_view(), name="brand-list"),
    path("brands/<int:brand_id>/", api.BrandDetailApi.as_view(), name="brand-detail"),
    path("members/", api.MemberListApi.as_view(), name="member-list"),
    path("tokens/", api.ApiTokenListApi.as_view(), name="api-token-list"),
    path(
        "tokens/<int:token_id>/revoke/",
        api.ApiTokenRevokeApi.as_view(),
        name="api-token-revoke",
    ),
]
