"""The batched ingest on SQLite (the demo's database), end to end.

Run by tests/test_sqlite_demo.py in a subprocess (the suite's own settings are
PostgreSQL): `python -m tests.sqlite_batch_ingest` with DATABASE_URL set to a
sqlite:/// file and the demo's settings. Migrates, makes the demo's workspace and
Sandbox account, and has two Sandbox people post as the live demo's traffic does
(social.sandbox.network.create_post; the deliveries it fans out are collected
instead of POSTed). The deliveries are stored as the webhook receiver stores them
and processed by the Celery task the demo's embedded worker runs
(social.process_webhook_event, applied in process with a group of ids):

- round 0: Bob's tagged post, and Alice's untagged reply to a thread Earshot has
  not seen yet (it waits for its thread);
- the batch: Alice's tagged post, Bob's tagged post (the thread Alice's reply
  waits for; his follower count changed since round 0), Bob's private message,
  a second delivery of Alice's post, Alice's tagged reply in her thread, a
  malformed delivery, round 0's delivery of Bob's post again, Alice's untagged
  reply in her thread;
- again: the batch's task once more, and every delivery of the batch stored
  again under new event ids and processed;
- poisoned: Bob's new post beside one of Alice's that the database refuses
  (simulated), through the group task and then the refused one's own task.

Prints one JSON line: the deliveries' statuses and the tenant's rows after each
step (see `_rows`).
"""

import json
import sys
import uuid
from typing import Any
from unittest.mock import patch

import django


def main() -> None:
    django.setup()
    from django.core.management import call_command

    from social.sandbox import network
    from social.sandbox.models import Person
    from social.sandbox.setup import connect_demo_account
    from social.tasks import process_webhook_event
    from tenants.context import tenant_context
    from tenants.models import Brand, Membership, User
    from tenants.services import create_workspace

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("owner@sqlite.example", "pw")
    tenant = create_workspace(owner=owner, name="Lite Air").tenant
    with tenant_context(tenant):
        membership = Membership.objects.select_related("user").get(user=owner)
        membership.tenant = tenant
        brand = Brand.objects.get()
        # No business hours: no away reply (its deferral depends on the clock).
        brand.business_hours = {}
        brand.save(update_fields=["business_hours"])
        account = connect_demo_account(membership, brand, "liteair")

    fanned: list[dict[str, Any]] = []
    patch.object(network, "_enqueue", lambda _grant, p: fanned.append(p)).start()
    alice = Person.objects.create(handle="alice", name="Alice A", followers=12)
    bob = Person.objects.create(handle="bob", name="Bob B", followers=340)

    def post(author: Any, text: str, in_reply_to: Any = None) -> tuple[str, bytes]:
        made, _created = network.create_post(author, text, in_reply_to=in_reply_to)
        (payload,) = fanned  # the one delivery, to the demo account
        fanned.clear()
        return str(made.pk), _body(payload)

    bob_old, bob_old_body = post(bob, "@liteair where is my bag?")
    # Bob's profile changes before his next post: the batch updates his identity.
    Person.objects.filter(pk=bob.pk).update(followers=345)
    bob_root, bob_root_body = post(bob, "@liteair flying tomorrow?")
    brand_person = Person.objects.get(handle="liteair")
    dm, _created = network.send_message(bob, brand_person, "my booking is XY12")
    (dm_payload,) = fanned
    fanned.clear()
    dm_body = _body(dm_payload)
    # Alice answers in Bob's new thread without tagging: until Earshot follows
    # the thread her reply waits (WaitingItem); the batch opens it.
    waiting, waiting_body = post(alice, "same here", _post(bob_root))
    alice_root, alice_root_body = post(alice, "@liteair my flight is cancelled")
    tagged, tagged_body = post(alice, "@liteair any news?", _post(alice_root))
    untagged, untagged_body = post(alice, "still nothing", _post(tagged))
    # A delivery whose author has no id.
    malformed_body = _body(
        {
            "event_id": str(uuid.uuid4()),
            "type": "post.created",
            "for_account": {"id": account.external_id},
            "post": {"id": "999", "text": "hi", "author": {"followers": 1}},
        }
    )

    round0 = _store([bob_old_body, waiting_body])
    process_webhook_event.apply(args=round0)
    with tenant_context(tenant):
        after_round0 = _rows()

    batch_bodies = [
        alice_root_body,
        bob_root_body,
        dm_body,
        _again(alice_root_body),  # the same post delivered twice
        tagged_body,
        malformed_body,
        _again(bob_old_body),  # recorded in round 0
        untagged_body,
    ]
    batch = _store(batch_bodies)
    result = process_webhook_event.apply(args=batch)
    with tenant_context(tenant):
        after_batch = _rows()
    again = process_webhook_event.apply(args=batch)
    with tenant_context(tenant):
        after_again = _rows()
    stored_again = _store([_again(raw) for raw in batch_bodies])
    replayed = process_webhook_event.apply(args=stored_again)
    with tenant_context(tenant):
        after_replay = _rows()

    # An item the database refuses fails alone: its neighbour is recorded, its
    # own task retries it and, out of retries, marks it failed.
    _refuse(POISON)
    fresh, fresh_body = post(bob, "@liteair thanks, found it")
    _refused_post, refused_body = post(alice, f"@liteair {POISON}")
    poisoned = _store([fresh_body, refused_body])
    group = process_webhook_event.apply(args=poisoned)
    alone = process_webhook_event.apply(args=poisoned[1:])
    with tenant_context(tenant):
        after_poison = _rows()

    outcome = {
        "posts": {
            "bob_old": bob_old,
            "bob_root": bob_root,
            "waiting": waiting,
            "alice_root": alice_root,
            "tagged": tagged,
            "untagged": untagged,
            "fresh": fresh,
            "dm": f"m{dm.pk}",
            "dm_thread": dm.thread,
            "alice": str(alice.pk),
            "bob": str(bob.pk),
        },
        "round0": {"deliveries": _deliveries(round0), "rows": after_round0},
        "batch": {
            "result": [result.state, result.result],
            "deliveries": _deliveries(batch),
            "batches": _batches(batch),
            "rows": after_batch,
        },
        "again": {
            "result": [again.state, again.result],
            "deliveries": _deliveries(batch),
            "rows": after_again,
        },
        "replayed": {
            "result": [replayed.state, replayed.result],
            "deliveries": _deliveries(stored_again),
            "batches": _batches(stored_again),
            "rows": after_replay,
        },
        "poisoned": {
            "group": [group.state, group.result],
            "alone": [alone.state, repr(alone.result)],
            "deliveries": _deliveries(poisoned),
            "rows": after_poison,
        },
    }
    sys.stdout.write(json.dumps(outcome) + "\n")


POISON = "<refused>"


def _refuse(marker: str) -> None:
    """The database refuses the message row of an item whose text has `marker`
    (simulated where both paths build that row: parsing makes every field
    storable), with a DataError, as PostgreSQL raises for a bad value."""
    from django.db import DataError

    from helpdesk.services import inbound, inbound_batch

    def refusing(build: Any) -> Any:
        def refused(*args: Any) -> Any:
            if marker in args[-1].text:
                raise DataError("the database refused the value")
            return build(*args)

        return refused

    # Each path keeps its own builder (the batch's skips Model.__init__).
    for module in (inbound, inbound_batch):
        patch.object(
            module, "customer_message", refusing(module.customer_message)
        ).start()


def _post(pk: str) -> Any:
    from social.sandbox.models import Post

    return Post.objects.get(pk=int(pk))


def _again(raw: bytes) -> bytes:
    """The same delivery under a new event id (the receiver stores it anew)."""
    return _body(json.loads(raw) | {"event_id": str(uuid.uuid4())})


def _body(payload: dict[str, Any]) -> bytes:
    # As network.post_webhook sends it.
    return json.dumps(payload, separators=(",", ":")).encode()


def _store(bodies: list[bytes]) -> list[int]:
    """The deliveries as the receiver stores them (event_key: the event id)."""
    from django.utils import timezone

    from social.models import WebhookEvent

    ids = []
    for raw in bodies:
        row = WebhookEvent.objects.create(
            platform="sandbox",
            event_key=json.loads(raw)["event_id"],
            body=raw,
            headers_digest="sqlite-test",
            received_at=timezone.now(),
        )
        ids.append(row.pk)
    return ids


def _deliveries(ids: list[int]) -> list[list[Any]]:
    from social.models import WebhookEvent

    rows = WebhookEvent.objects.filter(pk__in=ids).order_by("pk")
    return [[row.status, row.items, row.error, row.attempts] for row in rows]


def _batches(ids: list[int]) -> int:
    """How many batches marked the deliveries (each marks its own at one moment)."""
    from social.models import WebhookEvent

    return len(set(WebhookEvent.objects.filter(pk__in=ids).values_list("processed_at")))


def _rows() -> dict[str, Any]:
    """The tenant's rows the ingest writes, by external ids (no database ids);
    each conversation's messages in sequence order."""
    from helpdesk.models import Contact, Conversation, Event, Identity, Message
    from social.models import WaitingItem

    identities = {
        identity.pk: identity.external_id for identity in Identity.objects.all()
    }
    contact_of = dict(Identity.objects.values_list("contact_id", "external_id"))
    # Author@thread: the public thread, or the private one for a private
    # conversation.
    conversation_ref = {
        conversation.pk: f"{contact_of[conversation.contact_id]}@"
        f"{conversation.public_thread_ref or conversation.private_thread_ref}"
        for conversation in Conversation.objects.all()
    }
    messages = {message.pk: message for message in Message.objects.all()}
    return {
        "contacts": sorted(Contact.objects.values_list("display_name", flat=True)),
        "identities": sorted(
            Identity.objects.values_list(
                "external_id", "handle", "display_name", "followers"
            )
        ),
        "conversations": sorted(
            [
                conversation_ref[conversation.pk],
                conversation.status,
                conversation.customer_message_count,
                [
                    m.external_id
                    for m in sorted(
                        (
                            m
                            for m in messages.values()
                            if m.conversation_id == conversation.pk
                        ),
                        key=lambda m: (m.seq or 0, m.pk),
                    )
                ],
            ]
            for conversation in Conversation.objects.all()
        ),
        "messages": sorted(
            [
                message.external_id,
                identities.get(message.author_identity_id or 0),
                conversation_ref[message.conversation_id],
                message.seq,
            ]
            for message in messages.values()
        ),
        "events": [
            [
                event.seq,
                event.type,
                event.payload.get("seq"),
                conversation_ref.get(event.payload.get("conversation_id")),
                getattr(
                    messages.get(event.payload.get("message_id")), "external_id", None
                ),
            ]
            for event in Event.objects.order_by("seq")
        ],
        "waiting": sorted(WaitingItem.objects.values_list("external_id", flat=True)),
    }


if __name__ == "__main__":
    main()
