"""The Sandbox's publish writes its post with one written-out INSERT
(social.sandbox.network._insert_post): the row and the instance are what
Post.objects.create(...) makes of the same fields."""

from typing import Any

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

from social.sandbox import network
from social.sandbox.models import Person, Post
from tests.statements import count_statements

pytestmark = pytest.mark.django_db


def stored(post: Post) -> dict[str, Any]:
    row = model_to_dict(Post.objects.get(pk=post.pk))
    row.pop("id")
    return row


def test_a_published_reply_is_the_row_the_orm_would_write() -> None:
    jo = Person.objects.create(handle="jo", name="Jo")
    brand = Person.objects.create(handle="acmeair", name="Acme Air")
    root = Post.objects.create(author=jo, text="@acmeair lost my bag")
    parent = Post.objects.create(author=jo, text="hello?", in_reply_to=root, root=root)

    with count_statements() as statements:
        post, created = network.create_post(
            brand,
            "@Jo @bo sorry! é",
            in_reply_to=parent,
            idempotency_key="ref-1",
            language="en",
        )

    assert created
    inserts = [sql for sql in statements.sql if sql.startswith("INSERT")]
    assert inserts == [network._insert_post_sql()[0]]
    assert inserts[0].startswith('INSERT INTO "sandbox_post" ("author_id", "text"')
    orm = Post.objects.create(
        author=brand,
        text="@Jo @bo sorry! é",
        in_reply_to=parent,
        root=root,
        mentions=["bo", "jo"],
        idempotency_key="ref-2",
        language="en",
        created_at=post.created_at,
    )
    assert {**stored(orm), "idempotency_key": "ref-1"} == stored(post)
    assert (post.pk, post._state.adding, post._state.db) == (
        Post.objects.get(idempotency_key="ref-1").pk,
        False,
        "default",
    )
    assert post.pk != orm.pk
    assert network.post_json(post)["root"] == str(root.pk)


def test_a_replayed_key_in_a_transaction_answers_the_first_post() -> None:
    brand = Person.objects.create(handle="acmeair", name="Acme Air")
    with transaction.atomic():
        first, created = network.create_post(brand, "On it", idempotency_key="k")
        again, replayed = network.create_post(brand, "On it", idempotency_key="k")
        # The caller's transaction is still usable.
        assert Post.objects.filter(author=brand).count() == 1

    assert (created, replayed, again.pk) == (True, False, first.pk)
    assert Post.objects.get(pk=first.pk).replays == 1
