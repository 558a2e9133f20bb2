from django.urls import path

from social import views

app_name = "social"

urlpatterns = [
    path("social/callback/<str:platform>/", views.connect_callback, name="callback"),
    path(
        "t/<slug:tenant_slug>/social/connect/<str:platform>/",
        views.connect_start,
        name="connect",
    ),
]
