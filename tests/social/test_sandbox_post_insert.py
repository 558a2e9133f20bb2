"""The Sandbox's publish writes its post with one written-out INSERT
(social.sandbox.network._insert_post): the row and the instance are what
Post.objects.create(...) makes of the same fields."""

from typing import Any

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

from social.sandbox import network
from social.sandbox.models import App, Person, Post
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


@pytest.mark.django_db(transaction=True)
def test_a_reply_by_its_parents_id_is_one_statement_without_subscribers() -> None:
    """The API's path: the INSERT reads the parent's id and root itself and
    answers whether any app gets webhooks (none: nothing else is sent)."""
    jo = Person.objects.create(handle="jo", name="Jo")
    brand = Person.objects.create(handle="acmeair", name="Acme Air")
    root = Post.objects.create(author=jo, text="@acmeair lost my bag")
    parent = Post.objects.create(author=jo, text="hello?", in_reply_to=root, root=root)
    App.objects.create(name="Polls only", client_id="polls", webhook_url="")

    with count_statements() as statements:
        post, created = network.create_post(
            brand, "@Jo sorry!", in_reply_to_id=parent.pk, idempotency_key="ref-1"
        )

    assert created
    assert statements.sql == [network._insert_post_sql(from_parent=True)[0]]
    assert statements.sql[0].startswith('INSERT INTO "sandbox_post" ("author_id"')
    assert " SELECT " in statements.sql[0]
    assert (post.in_reply_to_id, post.root_id) == (parent.pk, root.pk)
    by_parent = network.create_post(
        brand, "@Jo sorry!", in_reply_to=parent, idempotency_key="ref-2"
    )[0]
    row = stored(post)
    assert row == {
        **stored(by_parent),
        "idempotency_key": "ref-1",
        "created_at": row["created_at"],
    }
    assert network.post_json(post)["root"] == str(root.pk)


def test_a_reply_to_a_missing_post_publishes_nothing() -> None:
    brand = Person.objects.create(handle="acmeair", name="Acme Air")
    missing = Post.objects.create(author=brand, text="gone")
    missing_id = missing.pk
    missing.delete()

    with pytest.raises(network.NoSuchPost):
        network.create_post(brand, "On it", in_reply_to_id=missing_id)

    assert Post.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("webhook_url", ["", "https://earshot.example/hooks/"])
def test_a_post_is_fanned_out_only_when_an_app_subscribes(
    webhook_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand = Person.objects.create(handle="acmeair", name="Acme Air")
    app = App.objects.create(name="Earshot", client_id="e", webhook_url=webhook_url)
    network.issue_grant(None, app=app, person=brand)
    fanned: list[int] = []
    monkeypatch.setattr(network, "fan_out_post", fanned.append)

    post, _ = network.create_post(brand, "Hello")
    with transaction.atomic():  # inside a transaction: asked after the commit
        later, _ = network.create_post(brand, "Again")

    assert fanned == ([post.pk, later.pk] if webhook_url else [later.pk])
