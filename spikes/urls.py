"""Pages of spike alerts, under /t/<tenant_slug>/alerts/."""

from django.urls import path

from spikes import views

app_name = "spikes"

alerts = "t/<slug:tenant_slug>/alerts/"

urlpatterns = [
    path(alerts, views.alerts, name="alerts"),
    path(f"{alerts}banner/", views.banner, name="banner"),
    path(f"{alerts}panels/", views.panels, name="panels"),
    path(f"{alerts}<int:alert_id>/", views.alert, name="alert"),
    path(f"{alerts}<int:alert_id>/acknowledge/", views.acknowledge, name="acknowledge"),
]
