"""The Sandbox's own pages: play a customer (post, reply, message a brand) and
authorize apps for a brand account."""

from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify

from social.sandbox import network
from social.sandbox.models import App, AuthCode, Message, Person, Post

SESSION_KEY = "sandbox_handle"


class IdentityForm(forms.Form):
    handle = forms.SlugField(max_length=30)
    name = forms.CharField(max_length=80, required=False)


class PostForm(forms.Form):
    text = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    in_reply_to = forms.IntegerField(required=False, widget=forms.HiddenInput)


class SpreadForm(forms.Form):
    post = forms.IntegerField(min_value=1)


# What each spread button adds: one person's repost or like, or a crowd's.
SPREAD = {
    "repost": {"reposts": 1},
    "like": {"likes": 1},
    "crowd": {"reposts": 40, "likes": 120},
}


class MessageForm(forms.Form):
    to = forms.SlugField(max_length=30)
    text = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))


def _me(request: HttpRequest) -> Person | None:
    handle = request.session.get(SESSION_KEY)
    return Person.objects.filter(handle=handle).first() if handle else None


def index(request: HttpRequest) -> HttpResponse:
    """The timeline, with forms to become someone, post, reply and message a brand."""
    me = _me(request)
    if request.method == "POST":
        return _act(request, me)
    threads = (
        Post.objects.select_related("author")
        .filter(in_reply_to__isnull=True)
        .prefetch_related("replies__author")[:30]
    )
    conversation = []
    if me is not None:
        conversation = list(
            Message.objects.select_related("sender", "recipient")
            .filter(Q(sender=me) | Q(recipient=me))
            .order_by("created_at")[:50]
        )
    context = {
        "me": me,
        "threads": threads,
        "brands": Person.objects.filter(is_brand=True),
        "messages_with_me": conversation,
        "identity_form": IdentityForm(),
        "post_form": PostForm(),
        "message_form": MessageForm(),
    }
    return render(request, "sandbox/index.html", context)


def _act(request: HttpRequest, me: Person | None) -> HttpResponse:
    action = request.POST.get("act")
    if action == "identity":
        form = IdentityForm(request.POST)
        if form.is_valid():
            handle = slugify(form.cleaned_data["handle"]).lower()
            person, _ = Person.objects.get_or_create(
                handle=handle, defaults={"name": form.cleaned_data["name"] or handle}
            )
            request.session[SESSION_KEY] = person.handle
        return redirect("sandbox:index")
    if me is None:
        return redirect("sandbox:index")
    if action == "post":
        post_form = PostForm(request.POST)
        if post_form.is_valid():
            parent_id = post_form.cleaned_data.get("in_reply_to")
            parent = Post.objects.filter(pk=parent_id).first() if parent_id else None
            network.create_post(me, post_form.cleaned_data["text"], in_reply_to=parent)
    elif action in SPREAD:
        spread_form = SpreadForm(request.POST)
        if spread_form.is_valid():
            network.spread_post(spread_form.cleaned_data["post"], **SPREAD[action])
    elif action == "message":
        message_form = MessageForm(request.POST)
        if message_form.is_valid():
            brand = Person.objects.filter(
                handle=message_form.cleaned_data["to"]
            ).first()
            if brand is not None:
                network.send_message(me, brand, message_form.cleaned_data["text"])
    return redirect("sandbox:index")


def authorize(request: HttpRequest) -> HttpResponse:
    """OAuth consent: pick the brand account the app may act for."""
    params = request.GET if request.method == "GET" else request.POST
    app = App.objects.filter(client_id=params.get("client_id", "")).first()
    redirect_uri = params.get("redirect_uri", "")
    if app is None or redirect_uri not in app.redirect_uris.split():
        return render(request, "sandbox/authorize_error.html", status=400)
    if params.get("code_challenge_method", "S256") != "S256" or not params.get(
        "code_challenge"
    ):
        return render(request, "sandbox/authorize_error.html", status=400)
    if request.method == "POST":
        handle = slugify(request.POST.get("handle", "")).lower()
        if handle:
            person, _ = Person.objects.get_or_create(
                handle=handle,
                defaults={"name": request.POST.get("name") or handle, "is_brand": True},
            )
            if not person.is_brand:
                person.is_brand = True
                person.save(update_fields=["is_brand"])
            code = AuthCode.objects.create(
                app=app,
                person=person,
                redirect_uri=redirect_uri,
                code_challenge=params["code_challenge"],
                expires_at=timezone.now() + timedelta(minutes=5),
            )
            query = urlencode({"code": code.code, "state": params.get("state", "")})
            return HttpResponseRedirect(f"{redirect_uri}?{query}")
    context = {
        "app": app,
        "params": params,
        "brands": Person.objects.filter(is_brand=True),
    }
    return render(request, "sandbox/authorize.html", context)
