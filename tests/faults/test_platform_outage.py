"""Edge fault 1 (issue 13): the platform answers 429 and 5xx for five minutes.

The Sandbox's outage switch (social.sandbox.outage) refuses every API call for
FAULTS_OUTAGE_SECONDS (300): half 429 with Retry-After (seconds), a quarter 503
with Retry-After as an HTTP-date, a quarter 500/502 with none. Meanwhile agents
reply through the API, and customers post mentions the webhooks never announce
(only polling finds them).

Afterwards every reply reached the Sandbox exactly once (invariant 3: the
Sandbox counts replays of an Idempotency-Key), every mention was recorded once,
polling caught up from its cursor, the account showed "degraded" while it lasted
(accounts page, banner, API) and not after, and no call of the account came
before a Retry-After it had been given had passed (1 s allowed for calls already
in flight when the refusal came back).
"""

import os
import time
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from django.test import Client

from helpdesk.models import Message
from social.models import SocialAccount
from social.sandbox import outage
from social.sandbox.models import Outage, OutageHit, Person, Post
from tenants.context import tenant_context
from tests.faults.conftest import StartStack
from tests.faults.outcome import (
    Expectation,
    Row,
    count_replies,
    inbound_rows,
    publish,
    wait_until,
)
from tests.faults.scenario import API_GIVE_UP, failures
from tests.faults.test_delivery_kills import customer_posts, reply_requests
from tests.faults.traffic import Sender
from tests.faults.workspace import BRAND_HANDLE, Workspace

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = float(os.environ.get("FAULTS_OUTAGE_SECONDS", "300"))
RETRY_AFTER = 20
REPLIES = 30
MENTIONS = 20
# How long before the switch runs out the account must still show degraded.
END_MARGIN = 3.0
# After the outage: the pause (Retry-After, at most 30 s of backoff) runs out, the
# first reply that works wakes the others and the next poll (beat: every 30 s).
RECOVERY_LIMIT = 90.0
IN_FLIGHT = timedelta(seconds=1)


def early_calls(hits: list[OutageHit]) -> list[tuple[OutageHit, OutageHit]]:
    """Refused calls that came while a Retry-After given to the same grant more
    than IN_FLIGHT before was still running, each with the refusal it ignored."""
    early = []
    for hit in hits:
        for given in hits:
            if given is hit or given.grant_id != hit.grant_id:
                continue
            if given.retry_after is None or given.at + IN_FLIGHT >= hit.at:
                continue
            if hit.at < given.at + timedelta(seconds=given.retry_after - 0.5):
                early.append((hit, given))
                break
    return early


class Watch:
    """What the test saw of the account's degraded state, by monotonic time."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.degraded_at: float | None = None
        self.cleared_at: float | None = None
        self.shown: dict[str, bool] = {}

    def degraded(self) -> bool:
        with tenant_context(self.workspace.tenant):
            return SocialAccount.objects.get(pk=self.workspace.account.pk).degraded

    def look(self, api_url: str) -> None:
        """Once degraded: is it on the accounts page, in the banner, in the API?"""
        if self.degraded_at is not None or not self.degraded():
            return
        self.degraded_at = time.monotonic()
        workspace = self.workspace
        browser = Client()
        browser.force_login(workspace.membership.user)
        slug = workspace.tenant.slug
        page = browser.get(f"/t/{slug}/settings/accounts/").content.decode()
        inbox = browser.get(f"/t/{slug}/").content.decode()
        rows = httpx.get(
            f"{api_url}/api/v1/t/{slug}/accounts/",
            headers={"Authorization": f"Bearer {workspace.token}"},
            timeout=10,
        ).json()
        self.shown = {
            "accounts page": "Degraded since" in page,
            "banner": 'id="degraded-accounts"' in inbox,
            "api": any(
                row["id"] == workspace.account.pk and row["degraded"] for row in rows
            ),
        }


def hidden_mention(index: int) -> Post:
    """A customer post mentioning the brand that no webhook announces."""
    author, _ = Person.objects.get_or_create(
        handle="fault_quiet", defaults={"name": "Quiet customer"}
    )
    text = f"@{BRAND_HANDLE} nobody answers the phone ({index})"
    return Post.objects.create(author=author, text=text, mentions=[BRAND_HANDLE])


def test_a_platform_answering_429_and_5xx_for_five_minutes(
    start_stack: StartStack,
) -> None:
    stack, workspace = start_stack("redis")
    conversations = customer_posts(workspace, REPLIES)
    with tenant_context(workspace.tenant):
        cursor_before = SocialAccount.objects.get(pk=workspace.account.pk).poll_cursor

    outage.start_outage(
        mode=Outage.Mode.MIXED, seconds=OUTAGE_SECONDS, retry_after=RETRY_AFTER
    )
    began = time.monotonic()
    ends = began + OUTAGE_SECONDS
    replies = Sender(
        "api",
        stack.url,
        reply_requests(workspace, conversations),
        rate=REPLIES / (OUTAGE_SECONDS * 0.7),
        accept={201},
        give_up=API_GIVE_UP,
        deadline=OUTAGE_SECONDS,
    ).start()
    watch = Watch(workspace)
    mentions: list[Post] = []
    every = OUTAGE_SECONDS * 0.8 / MENTIONS
    # "Still degraded at its end" is read a few seconds before the switch runs
    # out: read after it, the first call that works may already have cleared it.
    while time.monotonic() < ends - END_MARGIN:
        due = began + every * len(mentions)
        if len(mentions) < MENTIONS and time.monotonic() > due:
            mentions.append(hidden_mention(len(mentions)))
        watch.look(stack.url)
        time.sleep(1)
    degraded_at_end = watch.degraded()
    time.sleep(max(0.0, ends - time.monotonic()))
    fault_end = time.monotonic()
    replies.join()

    with tenant_context(workspace.tenant):
        reply_ids = list(
            Message.objects.filter(
                direction=Message.Direction.OUT, kind=Message.Kind.REPLY
            ).values_list("pk", flat=True)
        )
    polled = Expectation(
        source="hidden mentions",
        account=workspace.account,
        ids={str(post.pk) for post in mentions},
        sent=len(mentions),
        accepted=len(mentions),
    )
    announced_ids = {
        str(pk)
        for pk in Post.objects.filter(
            author__handle__startswith="fault_replyee_"
        ).values_list("pk", flat=True)
    }
    announced = Expectation(
        source="announced posts",
        account=workspace.account,
        ids=announced_ids,
        sent=len(announced_ids),
        accepted=len(announced_ids),
    )
    done_at: dict[str, float] = {}

    def recovered() -> bool:
        count = count_replies(workspace.tenant, reply_ids, workspace.brand_person.pk)
        if count.sent == REPLIES and not count.lost:
            done_at.setdefault("replies", time.monotonic())
        [row] = inbound_rows(
            workspace.tenant, [polled], fault="", broker="", done="", recovery={}
        )
        if row.lost == 0:
            done_at.setdefault(polled.source, time.monotonic())
        if not watch.degraded():
            done_at.setdefault("cleared", time.monotonic())
        [row] = inbound_rows(
            workspace.tenant, [announced], fault="", broker="", done="", recovery={}
        )
        if row.lost == 0:
            done_at.setdefault(announced.source, time.monotonic())
        return len(done_at) == 4

    wait_until(recovered, timeout=RECOVERY_LIMIT)
    time.sleep(2)  # late duplicates would show now

    count = count_replies(workspace.tenant, reply_ids, workspace.brand_person.pk)
    hits = list(OutageHit.objects.order_by("at"))
    ignored = early_calls(hits)
    early = len(ignored)
    statuses = Counter(str(hit.status) for hit in hits)
    per_minute = Counter(
        int((hit.at - hits[0].at).total_seconds() // 60) for hit in hits
    )
    shown = [where for where, seen in watch.shown.items() if seen]
    done = (
        f"{OUTAGE_SECONDS / 60:.0f} min 429/5xx; {len(hits)} calls refused, "
        f"{early} early; degraded shown in {len(shown)}/3"
    )
    recovery = {key: max(0.0, at - fault_end) for key, at in done_at.items()}
    rows = [
        Row(
            fault="e1 platform 429/5xx",
            broker="redis",
            source="replies",
            done=done,
            sent=len(replies.requests),
            accepted=replies.accepted,
            lost=len(count.lost) + REPLIES - len(reply_ids),
            duplicated=count.duplicated,
            codes=replies.codes,
            recovery=recovery.get("replies"),
            lost_ids=[str(pk) for pk in count.lost],
        ),
        *inbound_rows(
            workspace.tenant,
            [polled, announced],
            fault="e1 platform 429/5xx",
            broker="redis",
            done=done,
            recovery=recovery,
        ),
    ]
    with tenant_context(workspace.tenant):
        account = SocialAccount.objects.get(pk=workspace.account.pk)
    seen = "never" if watch.degraded_at is None else f"{watch.degraded_at - began:.1f}"
    cleared = recovery.get("cleared")
    cleared_after = "never" if cleared is None else f"{cleared:.1f}"
    notes = [
        f"- refused calls by status: {dict(sorted(statuses.items()))}; per minute of "
        f"the outage: {[per_minute[m] for m in sorted(per_minute)]}",
        f"- backoff honoured: {early} calls came before a Retry-After ({RETRY_AFTER} "
        f"s) given to the account had passed (1 s allowed for calls in flight)",
        f"- degraded: seen {seen} s into the outage, shown on {shown or 'nothing'}; "
        f"still degraded at its end: {degraded_at_end}; cleared {cleared_after} s "
        "after it",
        f"- poll cursor: {cursor_before!r} before, {account.poll_cursor!r} after "
        f"(newest hidden mention {max((m.pk for m in mentions), default=0)})",
        f"- delivery statuses: {dict(count.statuses)}",
    ]
    for hit, given in ignored[:6]:
        notes.append(
            f"  early: {hit.status} {hit.path} at {hit.at:%H:%M:%S.%f}, "
            f"{(hit.at - given.at).total_seconds():.2f} s after a {given.status} "
            f"asking for {given.retry_after:.0f} s ({given.path})"
        )
    if count.lost:
        notes.append(f"- replies not delivered: {count.lost[:12]}")
    publish("Edge fault 1: the platform answers 429 and 5xx", rows, notes)

    problems = failures(rows, [replies], stack)
    if early:
        problems.append(f"{early} calls did not wait for the Retry-After")
    if len(shown) != 3 or not degraded_at_end:
        problems.append(f"degraded not shown throughout: {watch.shown}")
    if "cleared" not in recovery:
        problems.append("the account was still degraded after the outage")
    if not hits or statuses["429"] == 0:
        problems.append(f"the outage refused no calls: {dict(statuses)}")
    assert not problems, "\n".join(problems)
