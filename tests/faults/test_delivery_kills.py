"""Fault 2: `kill -9` of the worker during 100 reply deliveries, at the moment a
reply is `sending` (its row is watched in a tight loop). The Sandbox answers a
published post late (SANDBOX_SLOW_POST_SECONDS), so the kill can fall between the
network's write and Earshot's record of it.

Every reply must reach the Sandbox exactly once (invariant 3): the Sandbox counts
every publish of an Idempotency-Key, so a second send is seen even though the
network dedupes it.
"""

import json
import time

import pytest

from helpdesk.models import Conversation, Message
from social.sandbox import network
from social.sandbox.models import Person
from tenants.context import tenant_context
from tests.faults.conftest import StartStack
from tests.faults.outcome import Row, count_replies, publish, wait_until
from tests.faults.scenario import API_GIVE_UP, QUIET_SECONDS, failures
from tests.faults.stack import Stack
from tests.faults.traffic import Request, Sender
from tests.faults.workspace import BRAND_HANDLE, Workspace

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

REPLIES = 100
KILLS = 3


def customer_posts(workspace: Workspace, count: int) -> list[int]:
    """`count` tagged customer posts on the Sandbox; waits for their conversations."""
    customers = [
        Person.objects.get_or_create(
            handle=f"fault_replyee_{n}", defaults={"name": f"Replyee {n}"}
        )[0]
        for n in range(10)
    ]
    for index in range(count):
        network.create_post(
            customers[index % len(customers)],
            f"@{BRAND_HANDLE} my booking {index} vanished, help",
        )

    def all_there() -> bool:
        with tenant_context(workspace.tenant):
            return Conversation.objects.count() >= count

    assert wait_until(all_there, timeout=90, interval=0.5), "customer posts missing"
    with tenant_context(workspace.tenant):
        return list(Conversation.objects.order_by("pk").values_list("pk", flat=True))


def reply_requests(workspace: Workspace, conversations: list[int]) -> list[Request]:
    headers = {
        "Authorization": f"Bearer {workspace.token}",
        "Content-Type": "application/json",
    }
    base = f"/api/v1/t/{workspace.tenant.slug}/conversations"
    return [
        Request(
            key=str(conversation),
            path=f"{base}/{conversation}/messages/",
            body=json.dumps(
                {
                    "text": f"Sorry about booking {index}, we're on it (case {index})",
                    "confirm": ["near_duplicate", "stale_view"],
                }
            ).encode(),
            headers=headers,
        )
        for index, conversation in enumerate(conversations)
    ]


def sending_now(workspace: Workspace) -> list[int]:
    with tenant_context(workspace.tenant):
        return list(
            Message.objects.filter(
                direction=Message.Direction.OUT,
                delivery_status=Message.DeliveryStatus.SENDING,
            ).values_list("pk", flat=True)
        )


def kill_while_sending(stack: Stack, workspace: Workspace, replies: Sender) -> float:
    """Kill the worker KILLS times, each the moment a reply (not one left over from
    an earlier kill) is `sending`; returns when the last replacement was ready."""
    fault_end = time.monotonic()
    stuck: set[int] = set()  # sending when killed before: not a live send
    for kill in range(KILLS):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ids = sorted(set(sending_now(workspace)) - stuck)
            if ids:
                stuck.update(ids)
                fault_end = stack.kill_worker(0, why=f"#{kill + 1} sending {ids}")
                break
            time.sleep(0.002)
        else:
            break  # no reply was sending any more: the test reports it
        time.sleep(1.5)
    return fault_end


def test_worker_killed_while_replies_are_sending(start_stack: StartStack) -> None:
    stack, workspace = start_stack("redis", workers=1, slow_post_seconds=0.4)
    conversations = customer_posts(workspace, REPLIES)
    replies = Sender(
        "api",
        stack.url,
        reply_requests(workspace, conversations),
        rate=6,
        accept={201},
        give_up=API_GIVE_UP,
    ).start()
    fault_end = kill_while_sending(stack, workspace, replies)
    replies.join()

    with tenant_context(workspace.tenant):
        reply_ids = list(
            Message.objects.filter(
                direction=Message.Direction.OUT, kind=Message.Kind.REPLY
            ).values_list("pk", flat=True)
        )

    def all_sent() -> bool:
        count = count_replies(workspace.tenant, reply_ids, workspace.brand_person.pk)
        return count.sent == REPLIES and not count.lost

    complete = wait_until(all_sent, timeout=QUIET_SECONDS)
    time.sleep(2)
    count = count_replies(workspace.tenant, reply_ids, workspace.brand_person.pk)
    while_sending = [kill for kill in stack.kills if "sending" in kill]
    row = Row(
        fault="2 kill during delivery",
        broker="redis",
        source="replies",
        done=f"{len(stack.kills)}x kill -9, {len(while_sending)} while sending",
        sent=len(replies.requests),
        accepted=replies.accepted,
        lost=len(count.lost) + REPLIES - len(reply_ids),
        duplicated=count.duplicated,
        codes=replies.codes,
        recovery=None if complete is None else max(0.0, complete - fault_end),
        lost_ids=[str(pk) for pk in count.lost],
    )
    notes = [
        f"- delivery statuses: {dict(count.statuses)}",
        f"- kills: {stack.kills}",
    ]
    if count.lost:
        notes.append(f"- replies not delivered: {count.lost[:12]}")
    publish("Fault 2: worker killed during deliveries", [row], notes)

    problems = failures([row], [replies], stack)
    if len(stack.kills) < KILLS or not while_sending:
        problems.append(f"only {stack.kills} kills; needed {KILLS}, while sending")
    assert not problems, "\n".join(problems)
