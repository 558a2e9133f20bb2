"""What happens on the Sandbox network: posting, messaging, and the signed webhooks
it sends to subscribed apps for every new post or message (with retries)."""

# ruff: noqa: S608 - table names come from the models; values are parameters.

import functools
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from social.sandbox.models import App, Grant, Message, Person, Post

SIGNATURE_HEADER = "X-Sandbox-Signature"


def sign(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, as the webhook header carries it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def person_json(person: Person) -> dict[str, Any]:
    return {
        "id": str(person.pk),
        "handle": person.handle,
        "name": person.name,
        "followers": person.followers,
    }


def post_json(post: Post) -> dict[str, Any]:
    return {
        "id": str(post.pk),
        "text": post.text,
        "author": person_json(post.author),
        "in_reply_to": str(post.in_reply_to_id) if post.in_reply_to_id else None,
        "root": str(post.root_id or post.pk),
        "mentions": post.mentions,
        "language": post.language,
        "created_at": post.created_at.isoformat(),
        "url": f"/sandbox/#post-{post.pk}",
    }


def spread_post(post_id: int, *, reposts: int = 0, likes: int = 0) -> bool:
    """People repost or like a post (the counters grow; no webhook, as on most
    platforms, which push no engagement to apps). False when there is no such post."""
    return bool(
        Post.objects.filter(pk=post_id).update(
            reposts=F("reposts") + max(0, reposts), likes=F("likes") + max(0, likes)
        )
    )


def engagement_json(post_ids: list[int]) -> list[dict[str, Any]]:
    """The public metrics of the posts that exist, in the order asked: reposts,
    likes, direct replies and quotes (the network has no quotes: 0). Two queries."""
    found = {
        pk: (reposts, likes)
        for pk, reposts, likes in Post.objects.filter(pk__in=post_ids).values_list(
            "pk", "reposts", "likes"
        )
    }
    replies = dict(
        Post.objects.filter(in_reply_to_id__in=list(found))
        .values("in_reply_to_id")
        .annotate(n=Count("pk"))
        .values_list("in_reply_to_id", "n")
    )
    return [
        {
            "id": str(pk),
            "public_metrics": {
                "reposts": found[pk][0],
                "likes": found[pk][1],
                "replies": replies.get(pk, 0),
                "quotes": 0,
            },
        }
        for pk in dict.fromkeys(post_ids)
        if pk in found
    ]


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": f"m{message.pk}",
        "text": message.text,
        "sender": person_json(message.sender),
        "recipient": person_json(message.recipient),
        "thread": message.thread,
        "created_at": message.created_at.isoformat(),
    }


class NoSuchPost(LookupError):
    """The post a reply answers does not exist."""


def create_post(
    author: Person,
    text: str,
    *,
    in_reply_to: Post | None = None,
    in_reply_to_id: int | None = None,
    idempotency_key: str = "",
    language: str = "",
) -> tuple[Post, bool]:
    """Publish a post (a reply when `in_reply_to`, or `in_reply_to_id`: the
    parent's id, looked up by the INSERT itself; NoSuchPost when there is no such
    post); a replayed idempotency key returns the first post (and counts the
    replay). Webhooks go out on commit. Returns (post, created)."""
    # A keyed publish inserts first and looks for the first post only when the key
    # is taken (the unique constraint decides): one statement fewer per new post.
    # Outside a transaction the INSERT is its own (no BEGIN and COMMIT around it:
    # two round trips fewer per post); inside one, a savepoint keeps a taken key
    # from breaking the caller's transaction.
    fields = {
        "author": author,
        "text": text,
        "in_reply_to": in_reply_to,
        # The parent's root id, not its root: no query for the parent's root row.
        "root_id": (in_reply_to.root_id or in_reply_to.pk) if in_reply_to else None,
        "mentions": Post.mentions_in(text),
        "idempotency_key": idempotency_key,
        "language": language,
    }
    post = Post(**fields)
    in_transaction = transaction.get_connection().in_atomic_block
    try:
        if in_transaction:
            with transaction.atomic():
                subscribed = _insert_post(post, parent_id=in_reply_to_id)
        else:
            subscribed = _insert_post(post, parent_id=in_reply_to_id)
    except IntegrityError:
        # The key was published before (a replay), or concurrently.
        existing = _replayed_post(author, idempotency_key)
        if not idempotency_key or existing is None:
            raise
        return existing, False
    if post.pk is None:
        raise NoSuchPost(in_reply_to_id)
    # Outside a transaction the INSERT committed when it answered whether apps
    # subscribe to webhooks (as fan_out_post would ask at once); inside one,
    # fan_out_post asks after the commit.
    if subscribed or in_transaction:
        transaction.on_commit(lambda: fan_out_post(post.pk))
    return post, True


def _insert_post(post: Post, *, parent_id: int | None = None) -> bool:
    """INSERT the new post, its id (and root) set from RETURNING: the statement
    Model.save sends, written out once (the API's post handler publishes every
    reply; in process, CPU under cProfile, the ORM's create took 1.2 ms of the
    handler's 3.6, this 0.56). Post has no pre_save work (no auto_now) and no save
    signal receivers.

    `parent_id`: a reply to that post, its id and root read by the same statement
    (INSERT ... SELECT): nothing is inserted, and post.pk stays None, when there
    is no such post. The same statement answers whether any app gets webhooks
    (_live_grants' question): True when one may."""
    if not connection.features.can_return_columns_from_insert:
        if parent_id is not None:
            parent = reply_target(str(parent_id))
            if parent is None:
                return False
            post.in_reply_to_id = parent.pk
            post.root_id = parent.root_id or parent.pk
        post.save(force_insert=True)
        return True
    sql, fields = _insert_post_sql(from_parent=parent_id is not None)
    params = [
        field.get_db_prep_save(getattr(post, field.attname), connection)
        for field in fields
    ]
    if parent_id is not None:
        params.append(parent_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *_SUBSCRIBERS_PARAMS])
        row = cursor.fetchone()
    if row is None:
        return False
    post.pk, root_id, subscribed = row
    if parent_id is not None:
        post.in_reply_to_id, post.root_id = parent_id, root_id
    post._state.adding = False
    post._state.db = connection.alias
    return bool(subscribed)


# A reply's parent and root, read by the INSERT from the parent's row.
_FROM_PARENT = {"in_reply_to_id": 'p."id"', "root_id": 'COALESCE(p."root_id", p."id")'}


@functools.cache
def _insert_post_sql(*, from_parent: bool = False) -> tuple[str, tuple[Any, ...]]:
    """The INSERT and the fields whose values it takes, in order (then, from a
    parent, the parent's id; then _live_grants' two parameters)."""
    columns = [
        field for field in Post._meta.local_concrete_fields if not field.primary_key
    ]
    quote = connection.ops.quote_name
    table = quote(Post._meta.db_table)
    names = ", ".join(quote(str(field.column)) for field in columns)
    returning = f' RETURNING "id", "root_id", EXISTS ({_subscribers_sql()})'
    if not from_parent:
        marks = ", ".join(["%s"] * len(columns))
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks}){returning}"
        return sql, tuple(columns)
    values = ", ".join(_FROM_PARENT.get(str(field.column), "%s") for field in columns)
    sql = (
        f"INSERT INTO {table} ({names}) SELECT {values} FROM {table} p"
        f' WHERE p."id" = %s{returning}'
    )
    fields = tuple(f for f in columns if str(f.column) not in _FROM_PARENT)
    return sql, fields


def _replayed_post(author: Person, idempotency_key: str) -> Post | None:
    """The author's post with this key, its replay counted; None when new."""
    existing = Post.objects.filter(
        author=author, idempotency_key=idempotency_key
    ).first()
    if existing is not None:
        Post.objects.filter(pk=existing.pk).update(replays=F("replays") + 1)
    return existing


def answer_delay() -> None:
    """A test knob (the fault suite): a post is published but the answer is late by
    SANDBOX_SLOW_POST_SECONDS, so a client can die between the network's write and
    its own record of it."""
    time.sleep(float(getattr(settings, "SANDBOX_SLOW_POST_SECONDS", 0)))


def send_message(
    sender: Person, recipient: Person, text: str, *, idempotency_key: str = ""
) -> tuple[Message, bool]:
    """Send a private message; webhooks go out on commit. Returns (message, created)."""
    if idempotency_key:
        existing = Message.objects.filter(
            sender=sender, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return existing, False
    with transaction.atomic():
        message = Message.objects.create(
            sender=sender,
            recipient=recipient,
            text=text,
            idempotency_key=idempotency_key,
        )
        transaction.on_commit(lambda: fan_out_message(message.pk))
    return message, True


# Any live grant of an app with a webhook URL (the parameters: not revoked, no URL).
_SUBSCRIBERS_PARAMS: tuple[bool, str] = (False, "")


@functools.cache
def _subscribers_sql() -> str:
    quote = connection.ops.quote_name
    grant, app = quote(Grant._meta.db_table), quote(App._meta.db_table)
    return (
        f'SELECT 1 FROM {grant} g JOIN {app} a ON a."id" = g."app_id"'
        ' WHERE g."revoked" = %s AND a."webhook_url" <> %s'
    )


def _live_grants() -> list[Grant]:
    """The grants that get webhooks: live, of an app with a webhook URL. Asked
    after every post and message: a written-out existence check first (a network
    without subscribers, as in the delivery benchmark, costs one cheap statement)."""
    with connection.cursor() as cursor:
        cursor.execute(f"{_subscribers_sql()} LIMIT 1", _SUBSCRIBERS_PARAMS)
        if cursor.fetchone() is None:
            return []
    return list(
        Grant.objects.select_related("app", "person")
        .filter(revoked=False)
        .exclude(app__webhook_url="")
    )


def fan_out_post(post_id: int) -> None:
    """Queue one webhook per connected account for a new public post.

    Every account sees every public post not its own (a firehose, like a filtered
    stream); `mentions_account` tells whether it was tagged.
    """
    grants = _live_grants()
    if not grants:
        return
    post = Post.objects.select_related("author", "in_reply_to__author").get(pk=post_id)
    for grant in grants:
        if grant.person_id == post.author_id:
            continue
        replied_to_me = bool(
            post.in_reply_to and post.in_reply_to.author_id == grant.person_id
        )
        payload = {
            "event_id": str(uuid.uuid4()),
            "type": "post.created",
            "for_account": person_json(grant.person),
            "mentions_account": grant.person.handle in post.mentions or replied_to_me,
            "post": post_json(post),
        }
        _enqueue(grant, payload)


def fan_out_message(message_id: int) -> None:
    """Queue a webhook for the account that received a private message."""
    grants = _live_grants()
    if not grants:
        return
    message = Message.objects.select_related("sender", "recipient").get(pk=message_id)
    for grant in grants:
        if grant.person_id != message.recipient_id:
            continue
        payload = {
            "event_id": str(uuid.uuid4()),
            "type": "message.created",
            "for_account": person_json(grant.person),
            "message": message_json(message),
        }
        _enqueue(grant, payload)


def _enqueue(grant: Grant, payload: dict[str, Any]) -> None:
    from social.sandbox.tasks import deliver_webhook

    deliver_webhook.delay(grant.app.webhook_url, grant.app.webhook_secret, payload)


def post_webhook(url: str, secret: str, payload: dict[str, Any]) -> int:
    """POST one signed delivery; returns the HTTP status (tests swap the transport)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    response = httpx.post(
        url,
        content=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, secret),
        },
        timeout=10.0,
    )
    return response.status_code


def grant_for_token(token: str) -> Grant | None:
    """The live grant of an access token, with its person; None when the token is
    unknown, revoked or expired.

    The API authenticates every call with it, so it is one statement written out:
    the ORM's compile of the same select_related (three tables) cost about 1.5 ms
    of CPU per call. The grant and the person come back with the fields the views
    use; the others load on first access, as with .only()."""
    with connection.cursor() as cursor:
        cursor.execute(
            _grant_sql(),
            [
                token,
                False,
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    grant_id, app_id, person_id, handle, name, followers, is_brand = row
    grant = Grant.from_db(
        connection.alias, ["id", "app_id", "person_id"], [grant_id, app_id, person_id]
    )
    grant.person = Person.from_db(
        connection.alias,
        ["id", "handle", "name", "followers", "is_brand"],
        [person_id, handle, name, followers, bool(is_brand)],
    )
    return grant


@functools.cache
def _grant_sql() -> str:
    quote = connection.ops.quote_name
    grant, person = quote(Grant._meta.db_table), quote(Person._meta.db_table)
    return (
        'SELECT g."id", g."app_id", g."person_id", p."handle", p."name",'
        ' p."followers", p."is_brand"'
        f' FROM {grant} g JOIN {person} p ON p."id" = g."person_id"'
        ' WHERE g."access_token" = %s AND g."revoked" = %s AND g."expires_at" > %s'
    )


def post_id_of(text: str) -> int | None:
    """The post id `text` can be (digits, at most 18), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def reply_target(post_id: str) -> Post | None:
    """The post a reply answers (its id and root only: all a new reply needs), or
    None when there is no such post. One statement, written out (the API's post
    handler asks for every reply)."""
    pk = post_id_of(post_id)
    if pk is None:
        return None
    table = connection.ops.quote_name(Post._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "id", "root_id" FROM {table} WHERE "id" = %s', [pk])
        row = cursor.fetchone()
    return (
        None if row is None else Post.from_db(connection.alias, ["id", "root_id"], row)
    )


def issue_grant(grant: Grant | None, **fields: Any) -> Grant:
    """A fresh token pair valid for an hour (reusing the grant row when given)."""
    expires = timezone.now() + timedelta(hours=1)
    if grant is None:
        return Grant.objects.create(expires_at=expires, **fields)
    from social.sandbox.models import new_secret

    grant.access_token, grant.refresh_token = new_secret(), new_secret()
    grant.expires_at = expires
    grant.save(update_fields=["access_token", "refresh_token", "expires_at"])
    return grant
