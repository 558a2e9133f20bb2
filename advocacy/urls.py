"""Pages of advocates and the competitor feed, under /t/<tenant_slug>/reports/."""

from django.urls import path

from advocacy import views

app_name = "advocacy"

reports = "t/<slug:tenant_slug>/reports/"

urlpatterns = [
    path(f"{reports}advocates/", views.advocates, name="advocates"),
    path(f"{reports}advocates/scan/", views.advocates_scan, name="advocates-scan"),
    path(
        f"{reports}advocates/<int:suggestion_id>/decide/",
        views.advocate_decide,
        name="advocate-decide",
    ),
    path(f"{reports}competitors/", views.competitors, name="competitors"),
]
