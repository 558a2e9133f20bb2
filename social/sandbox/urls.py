from django.urls import path

from social.sandbox import api, views

app_name = "sandbox"

urlpatterns = [
    path("", views.index, name="index"),
    path("oauth/authorize", views.authorize, name="authorize"),
    path("api/oauth/token", api.token, name="token"),
    path("api/oauth/revoke", api.revoke, name="revoke"),
    path("api/me", api.me, name="me"),
    path("api/posts", api.posts, name="posts"),
    path("api/posts/lookup", api.lookup, name="lookup"),
    path("api/messages", api.messages, name="messages"),
    path("api/mentions", api.mentions, name="mentions"),
]
