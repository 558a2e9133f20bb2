"""The Sandbox's reposts and likes (R13): its post lookup answers engagement like a
platform (bearer token, 100 ids, unknown ids under errors, field errors), its
page's buttons make a post spread, and the traffic makes one thread spread."""

import random
from typing import Any

import pytest
from django.test import Client, override_settings

from social.sandbox import network, traffic
from social.sandbox.models import App, Person, Post

pytestmark = pytest.mark.django_db

URL = "/sandbox/api/posts/lookup"


@pytest.fixture
def token() -> str:
    app = App.objects.create(name="Earshot", client_id="earshot-test-lookup")
    brand = Person.objects.create(handle="acmeair", name="Acme Air", is_brand=True)
    return network.issue_grant(None, app=app, person=brand).access_token


def lookup(token: str, ids: str) -> Any:
    return Client().get(URL, {"ids": ids}, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_lookup_answers_public_metrics_and_lists_unknown_posts(
    token: str,
) -> None:
    jo = Person.objects.create(handle="jo", name="Jo")
    post, _ = network.create_post(jo, "@acmeair lost my bag")
    quiet, _ = network.create_post(jo, "@acmeair never mind")
    network.create_post(jo, "anyone?", in_reply_to=post)
    assert network.spread_post(post.pk, reposts=3, likes=7)

    response = lookup(token, f"{post.pk},999,{quiet.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "data": [
            {
                "id": str(post.pk),
                "public_metrics": {"reposts": 3, "likes": 7, "replies": 1, "quotes": 0},
            },
            {
                "id": str(quiet.pk),
                "public_metrics": {"reposts": 0, "likes": 0, "replies": 0, "quotes": 0},
            },
        ],
        "errors": [{"id": "999", "title": "Not Found"}],
    }


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("", "ids is required"),
        (",".join(str(n) for n in range(1, 102)), "at most 100 ids per call"),
        ("1,two", "ids are post ids separated by commas"),
        ("1" * 19, "ids are post ids separated by commas"),
    ],
)
def test_bad_ids_are_field_errors(token: str, ids: str, message: str) -> None:
    response = lookup(token, ids)

    assert response.status_code == 400
    assert response.json() == {"error": message, "field": "ids"}


def test_the_lookup_needs_a_token_and_keeps_the_rate_limit(token: str) -> None:
    assert Client().get(URL, {"ids": "1"}).status_code == 401
    with override_settings(SANDBOX_RATE_LIMIT_PER_MINUTE=0):
        limited = lookup(token, "1")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1


def test_the_pages_buttons_make_a_post_spread() -> None:
    jo = Person.objects.create(handle="jo", name="Jo")
    post, _ = network.create_post(jo, "@acmeair lost my bag")
    page = Client()
    page.post("/sandbox/", {"act": "identity", "handle": "crowd", "name": "Crowd"})

    for act in ("repost", "like", "like", "crowd"):
        assert page.post("/sandbox/", {"act": act, "post": post.pk}).status_code == 302
    page.post("/sandbox/", {"act": "crowd", "post": "not a post"})

    post.refresh_from_db()
    assert (post.reposts, post.likes) == (41, 122)
    assert b"41 reposts" in page.get("/sandbox/").content


def test_the_traffic_makes_a_new_thread_spread_for_a_while() -> None:
    jo = Person.objects.create(handle="jo", name="Jo")
    first, _ = network.create_post(jo, "@acmeair delayed")
    spread = traffic.Spread()

    class Always(random.Random):
        def random(self) -> float:
            return 0.0

    spread.step(Always(1), first)
    assert spread.post_id == first.pk
    for _ in range(3):
        spread.step(random.Random(2), first)
    first.refresh_from_db()
    assert first.reposts >= 3 * 2
    assert first.likes >= 3 * 5
    spread.until = 0.0  # the spread is over
    replies_only, _ = network.create_post(jo, "hello?", in_reply_to=first)
    spread.step(Always(1), replies_only)
    assert spread.post_id is None  # a reply never starts one
    assert Post.objects.get(pk=replies_only.pk).reposts == 0
