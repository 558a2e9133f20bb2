"""The Sandbox's post handler (POST /sandbox/api/posts) behaves like a platform's
with its statements written out (issue 12 item 5): a live token only, a reply
threads under its root, a missing parent is a 404 that publishes nothing, and a
replayed Idempotency-Key answers the first post."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from social.sandbox import network
from social.sandbox.models import App, Grant, Person, Post

pytestmark = pytest.mark.django_db


@pytest.fixture
def people() -> tuple[Person, Person, Grant]:
    brand = Person.objects.create(handle="acmeair", name="Acme Air", followers=12)
    jo = Person.objects.create(handle="jo", name="Jo")
    app = App.objects.create(name="Earshot", client_id="earshot-posts-test")
    return brand, jo, network.issue_grant(None, app=app, person=brand)


def publish(token: str, body: dict[str, Any], key: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return Client().post(
        "/sandbox/api/posts",
        data=body,
        content_type="application/json",
        headers=headers,
    )


def test_a_reply_to_a_reply_threads_under_the_root(
    people: tuple[Person, Person, Grant],
) -> None:
    brand, jo, grant = people
    root, _ = network.create_post(jo, "@acmeair lost my bag")
    follow_up, _ = network.create_post(jo, "hello?", in_reply_to=root)

    answer = publish(grant.access_token, {"text": "On it", "in_reply_to": follow_up.pk})

    assert answer.status_code == 201
    data = answer.json()
    post = Post.objects.get(pk=int(data["id"]))
    assert (post.author_id, post.text, post.in_reply_to_id, post.root_id) == (
        brand.pk,
        "On it",
        follow_up.pk,
        root.pk,
    )
    assert (data["in_reply_to"], data["root"], data["url"]) == (
        str(follow_up.pk),
        str(root.pk),
        f"/sandbox/#post-{post.pk}",
    )
    assert data["author"] == {
        "id": str(brand.pk),
        "handle": "acmeair",
        "name": "Acme Air",
        "followers": 12,
    }


def test_only_a_live_token_publishes(people: tuple[Person, Person, Grant]) -> None:
    _brand, _jo, grant = people
    before = Post.objects.count()
    assert publish("nope", {"text": "hi"}).status_code == 401

    Grant.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert publish(grant.access_token, {"text": "hi"}).status_code == 401

    Grant.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() + timedelta(hours=1), revoked=True
    )
    assert publish(grant.access_token, {"text": "hi"}).status_code == 401
    assert Post.objects.count() == before

    Grant.objects.filter(pk=grant.pk).update(revoked=False)
    assert publish(grant.access_token, {"text": "hi"}).status_code == 201
    assert Post.objects.count() == before + 1


@pytest.mark.parametrize("parent", ["999999", "²", "1" * 30, "-1"])
def test_a_reply_to_no_post_is_a_404_and_publishes_nothing(
    people: tuple[Person, Person, Grant], parent: str
) -> None:
    _brand, _jo, grant = people
    before = Post.objects.count()
    answer = publish(grant.access_token, {"text": "On it", "in_reply_to": parent})
    assert (answer.status_code, answer.json()) == (
        404,
        {"error": "the post you reply to does not exist", "field": "in_reply_to"},
    )
    assert Post.objects.count() == before


def test_a_replayed_key_answers_the_first_post(
    people: tuple[Person, Person, Grant],
) -> None:
    _brand, jo, grant = people
    root, _ = network.create_post(jo, "@acmeair lost my bag")
    body = {"text": "On it", "in_reply_to": root.pk}
    first = publish(grant.access_token, body, key="ref-1")
    again = publish(grant.access_token, body, key="ref-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    post = Post.objects.get(pk=int(first.json()["id"]))
    assert (post.replays, Post.objects.filter(in_reply_to=root).count()) == (1, 1)
