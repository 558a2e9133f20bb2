"""What every fault test does around its fault: start the traffic, wait until the
system is quiet, measure, print, and judge (0 lost, 0 duplicated, refusals only as
503 with Retry-After in the API's shape, every process alive)."""

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests.faults.outcome import (
    Expectation,
    Row,
    await_inbound,
    inbound_rows,
    publish,
    webhook_diagnosis,
)
from tests.faults.stack import Stack
from tests.faults.traffic import (
    Refusal,
    SandboxPoster,
    Sender,
    WebhookPlan,
    api_pushes,
)
from tests.faults.workspace import BRAND_HANDLE, Workspace

# How long the system may take to catch up after the traffic (sweepers included).
QUIET_SECONDS = float(os.environ.get("FAULTS_QUIET_SECONDS", "120"))
API_GIVE_UP = (400, 401, 403, 404, 405, 409, 413)

_SANDBOX_DONE = re.compile(
    r"sandbox\.deliver_webhook\[[^\]]+\] succeeded in [^:]+: (\d+)"
)
_SANDBOX_RETRY = re.compile(r"sandbox\.deliver_webhook\[[^\]]+\] retry: (.*)")
_SANDBOX_FAILED = re.compile(r"sandbox\.deliver_webhook\[[^\]]+\] raised")


def sandbox_codes(stack: Stack) -> Counter[str]:
    """What Earshot answered the Sandbox's webhook sender, from its log."""
    log = (stack.log_dir / "sandbox-worker.log").read_text(errors="replace")
    codes: Counter[str] = Counter(_SANDBOX_DONE.findall(log))
    for reason in _SANDBOX_RETRY.findall(log):
        codes["retry"] += 1
        if "Error" in reason or "error" in reason:
            codes["retry:conn"] += 1
    codes["gave up"] += len(_SANDBOX_FAILED.findall(log))
    return +codes


@dataclass
class Traffic:
    """The three client kinds of faults 1, 3 and 4, started together."""

    webhooks: Sender
    webhook_plan: WebhookPlan
    pushes: Sender
    poster: SandboxPoster

    def start(self) -> "Traffic":
        self.webhooks.start()
        self.pushes.start()
        self.poster.start()
        return self

    def join(self) -> None:
        self.poster.join()
        self.webhooks.join()
        self.pushes.join()

    @property
    def senders(self) -> list[Sender]:
        return [self.webhooks, self.pushes]

    def expectations(self, workspace: Workspace, stack: Stack) -> list[Expectation]:
        codes = sandbox_codes(stack)
        return [
            Expectation(
                source="webhooks",
                account=workspace.account,
                ids=self.webhook_plan.expected,
                threads=self.webhook_plan.threads,
                sent=len(self.webhooks.requests),
                accepted=self.webhooks.accepted,
                codes=self.webhooks.codes,
            ),
            Expectation(
                source="api pushes",
                account=workspace.channel,
                ids={request.key for request in self.pushes.requests},
                threads={request.thread for request in self.pushes.requests},
                sent=len(self.pushes.requests),
                accepted=self.pushes.accepted,
                codes=self.pushes.codes,
            ),
            Expectation(
                source="sandbox posts",
                account=workspace.account,
                ids=set(self.poster.expected),
                threads=set(self.poster.threads),
                sent=self.poster.posts,
                accepted=sum(n for code, n in codes.items() if code.startswith("2")),
                codes=codes,
            ),
        ]


def mixed_traffic(
    stack: Stack,
    workspace: Workspace,
    run: str,
    *,
    webhooks: WebhookPlan,
    pushes: int,
    rate: float,
    sandbox_rate: float,
    sandbox_limit: int,
    duration: float,
) -> Traffic:
    api = api_pushes(
        workspace.tenant.slug, workspace.channel.pk, workspace.token, run, count=pushes
    )
    return Traffic(
        webhooks=Sender(
            "webhooks", stack.url, webhooks.requests, rate=rate, accept={200}
        ),
        webhook_plan=webhooks,
        pushes=Sender(
            "api", stack.url, api, rate=rate, accept={200, 201}, give_up=API_GIVE_UP
        ),
        poster=SandboxPoster(
            BRAND_HANDLE, rate=sandbox_rate, duration=duration, limit=sandbox_limit
        ),
    )


def settle(
    workspace: Workspace,
    expectations: Callable[[], list[Expectation]],
    *,
    fault: str,
    broker: str,
    done: str,
    fault_end: float,
) -> list[Row]:
    """Wait (bounded) until everything expected is recorded; the table's rows.

    `expectations` is asked again for the rows, so late counts (the Sandbox's
    retries) are included."""
    complete = await_inbound(workspace.tenant, expectations(), timeout=QUIET_SECONDS)
    recovery = {source: max(0.0, at - fault_end) for source, at in complete.items()}
    time.sleep(2)  # late duplicates would show now
    return inbound_rows(
        workspace.tenant,
        expectations(),
        fault=fault,
        broker=broker,
        done=done,
        recovery=recovery,
    )


def conclude(
    workspace: Workspace,
    traffic: Traffic,
    stack: Stack,
    *,
    title: str,
    fault: str,
    broker: str,
    done: str,
    fault_end: float,
) -> list[Row]:
    """Settle, print the table under `title`, and fail on any broken invariant."""
    rows = settle(
        workspace,
        lambda: traffic.expectations(workspace, stack),
        fault=fault,
        broker=broker,
        done=done,
        fault_end=fault_end,
    )
    publish(title, rows, notes_for(rows, traffic, stack))
    problems = failures(rows, traffic.senders, stack)
    assert not problems, "\n".join(problems)
    return rows


def improper(refusals: Iterable[Refusal]) -> list[Refusal]:
    """Refusals that are not a 503 with Retry-After (in the API's shape for the
    API: `{"code": "service_unavailable", ...}`)."""
    wrong = []
    for refusal in refusals:
        shaped = refusal.source != "api" or refusal.code == "service_unavailable"
        if refusal.status != 503 or not refusal.retry_after or not shaped:
            wrong.append(refusal)
    return wrong


def notes_for(rows: list[Row], traffic: Traffic | None, stack: Stack) -> list[str]:
    """Lines under the table: what was lost, and the stored events behind it."""
    notes = []
    for row in rows:
        if row.lost:
            notes.append(f"- {row.source}: lost {row.lost_ids[:12]}")
            if row.source == "webhooks" and traffic is not None:
                events = [traffic.webhook_plan.event_ids[key] for key in row.lost_ids]
                notes.append(webhook_diagnosis(events))
    if traffic is not None:
        for sender in traffic.senders:
            wrong = improper(sender.refusals)
            if wrong:
                sample = Counter((r.status, r.retry_after, r.code) for r in wrong)
                notes.append(f"- {sender.name}: improper refusals {dict(sample)}")
                notes.append(f"  e.g. {wrong[0].body!r}")
        if traffic.poster.errors:
            notes.append(f"- sandbox poster errors: {dict(traffic.poster.errors)}")
    notes.append(f"- kills: {stack.kills}" if stack.kills else "- kills: none")
    return notes


def failures(rows: list[Row], senders: Iterable[Sender], stack: Stack) -> list[str]:
    """Everything that breaks the invariants, as messages (empty: all good)."""
    found = []
    for row in rows:
        if row.lost:
            found.append(f"{row.source}: {row.lost} lost, e.g. {row.lost_ids[:5]}")
        if row.duplicated:
            found.append(f"{row.source}: {row.duplicated} duplicated")
    for sender in senders:
        wrong = improper(sender.refusals)
        if wrong:
            found.append(
                f"{sender.name}: {len(wrong)} refusals not a 503 with Retry-After "
                f"in the API shape, e.g. {wrong[0]}"
            )
    dead = stack.dead()
    if dead:
        found.append(f"not running afterwards: {dead}")
    return found
