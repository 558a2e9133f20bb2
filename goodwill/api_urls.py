"""API routes of goodwill gestures, mounted in the workspace's API namespace."""

from django.urls import path

from goodwill import api

urlpatterns = [
    path(
        "goodwill/pools/",
        api.GoodwillPoolListApi.as_view(),
        name="goodwill-pool-list",
    ),
    path(
        "goodwill/pools/<int:pool_id>/",
        api.GoodwillPoolDetailApi.as_view(),
        name="goodwill-pool-detail",
    ),
    path(
        "goodwill/pools/<int:pool_id>/import/",
        api.GoodwillCodeImportApi.as_view(),
        name="goodwill-code-import",
    ),
    path(
        "conversations/<int:conversation_id>/goodwill/",
        api.GoodwillReplyCreateApi.as_view(),
        name="goodwill-reply-create",
    ),
    path(
        "reports/goodwill/",
        api.GestureReportApi.as_view(),
        name="report-goodwill",
    ),
]
