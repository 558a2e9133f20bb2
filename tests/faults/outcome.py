"""What Earshot recorded against what the clients sent: lost, duplicated, recovery.

Inbound: lost = expected external ids with no inbound Message; duplicated = extra
Message rows per external id (the unique key should make that impossible) plus
extra conversations per thread (a thread recorded as two conversations).
Replies: lost = not sent, or sent with no post at the Sandbox; duplicated = every
publish beyond the first at the Sandbox (replays of the Idempotency-Key, which the
Sandbox dedupes, and extra posts answering the same customer post).

Columns: `sent` requests (or Sandbox posts), `accepted` (answered 2xx in the end),
`client codes` (every answer the clients saw, retries included; `conn:*` is a
connection error; for Sandbox posts, what Earshot answered the Sandbox's sender),
`recovery s` (from the fault's end, the service back or the last replacement
worker ready, until everything expected from that source was recorded; traffic
still arriving after the fault is included).

Each fault prints a table and appends it to tests/faults/artifacts/results.md.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db import connections
from django.db.models import Count, Sum

from helpdesk.models import Conversation, Message
from social.models import SocialAccount, WebhookEvent
from social.sandbox.models import Post
from tenants.context import tenant_context
from tenants.models import Tenant

RESULTS = Path(__file__).resolve().parent / "artifacts" / "results.md"
COLUMNS = (
    "fault",
    "broker",
    "source",
    "done",
    "sent",
    "accepted",
    "lost",
    "duplicated",
    "client codes",
    "recovery s",
)


@dataclass
class Expectation:
    """Inbound external ids one traffic source must leave recorded, on `account`."""

    source: str
    account: SocialAccount
    ids: set[str]
    threads: set[str] = field(default_factory=set)
    sent: int = 0
    accepted: int = 0
    codes: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Row:
    fault: str
    broker: str
    source: str
    done: str
    sent: int
    accepted: int
    lost: int
    duplicated: int
    codes: Mapping[str, int]
    recovery: float | None
    lost_ids: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.codes.items()))
        recovery = "not recovered" if self.recovery is None else f"{self.recovery:.1f}"
        return [
            self.fault,
            self.broker,
            self.source,
            self.done,
            str(self.sent),
            str(self.accepted),
            str(self.lost),
            str(self.duplicated),
            "{" + codes + "}",
            recovery,
        ]


def recorded_inbound(tenant: Tenant, expectation: Expectation) -> Counter[str]:
    """How many inbound Message rows each expected external id has."""
    with tenant_context(tenant):
        rows = Message.objects.filter(
            account=expectation.account,
            direction=Message.Direction.IN,
            external_id__in=expectation.ids,
        ).values_list("external_id", flat=True)
        return Counter(str(external_id) for external_id in rows)


def extra_conversations(tenant: Tenant, expectation: Expectation) -> int:
    """Conversations beyond one per thread."""
    if not expectation.threads:
        return 0
    with tenant_context(tenant):
        per_thread = (
            Conversation.objects.filter(
                social_account=expectation.account,
                public_thread_ref__in=expectation.threads,
            )
            .values("public_thread_ref")
            .annotate(n=Count("id"))
        )
        return sum(row["n"] - 1 for row in per_thread)


def wait_until(
    complete: Callable[[], bool], *, timeout: float, interval: float = 1.0
) -> float | None:
    """Poll `complete` until true; the monotonic time it was, or None on timeout.

    The database may be coming back: a failed poll closes the connections and
    tries again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if complete():
                return time.monotonic()
        except Exception:
            connections.close_all()
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def await_inbound(
    tenant: Tenant, expectations: Iterable[Expectation], *, timeout: float
) -> dict[str, float]:
    """Wait until every expected id is recorded; when each source was complete
    (monotonic time), missing the sources that never were."""
    pending = list(expectations)
    complete_at: dict[str, float] = {}

    def complete() -> bool:
        for expectation in pending:
            if expectation.source in complete_at:
                continue
            if len(recorded_inbound(tenant, expectation)) == len(expectation.ids):
                complete_at[expectation.source] = time.monotonic()
        return len(complete_at) == len(pending)

    wait_until(complete, timeout=timeout)
    return complete_at


def inbound_rows(
    tenant: Tenant,
    expectations: Iterable[Expectation],
    *,
    fault: str,
    broker: str,
    done: str,
    recovery: Mapping[str, float],
) -> list[Row]:
    """One row per source; `recovery` has the seconds each source took to be
    complete after the fault (a source missing from it never was)."""
    rows = []
    for expectation in expectations:
        recorded = recorded_inbound(tenant, expectation)
        lost = sorted(expectation.ids - set(recorded))
        duplicated = sum(n - 1 for n in recorded.values()) + extra_conversations(
            tenant, expectation
        )
        rows.append(
            Row(
                fault=fault,
                broker=broker,
                source=expectation.source,
                done=done,
                sent=len(expectation.ids) if not expectation.sent else expectation.sent,
                accepted=expectation.accepted,
                lost=len(lost),
                duplicated=duplicated,
                codes=dict(expectation.codes),
                recovery=recovery.get(expectation.source),
                lost_ids=lost,
            )
        )
    return rows


@dataclass
class ReplyCount:
    sent: int
    lost: list[int]
    duplicated: int
    statuses: Counter[str]


def count_replies(
    tenant: Tenant, message_ids: list[int], brand_person_id: int
) -> ReplyCount:
    """Delivery of the replies `message_ids`, as the Sandbox saw it."""
    with tenant_context(tenant):
        replies = list(
            Message.objects.filter(pk__in=message_ids).values(
                "pk", "delivery_status", "client_ref", "external_id"
            )
        )
    keys = {str(reply["client_ref"]): reply for reply in replies}
    published = Post.objects.filter(author_id=brand_person_id, idempotency_key__in=keys)
    by_key = {post.idempotency_key: post for post in published}
    replays = published.aggregate(n=Sum("replays"))["n"] or 0
    # The same customer post answered by more than one brand post.
    answers = (
        Post.objects.filter(author_id=brand_person_id, in_reply_to__isnull=False)
        .values("in_reply_to")
        .annotate(n=Count("id"))
    )
    extra_answers = sum(row["n"] - 1 for row in answers)
    lost = [
        reply["pk"]
        for key, reply in keys.items()
        if reply["delivery_status"] != Message.DeliveryStatus.SENT or key not in by_key
    ]
    lost += sorted(set(message_ids) - {reply["pk"] for reply in replies})
    return ReplyCount(
        sent=sum(
            reply["delivery_status"] == Message.DeliveryStatus.SENT for reply in replies
        ),
        lost=lost,
        duplicated=replays + extra_answers,
        statuses=Counter(str(reply["delivery_status"]) for reply in replies),
    )


def webhook_diagnosis(event_ids: Iterable[str]) -> str:
    """Status of the stored deliveries behind lost items (what the logs can't say)."""
    events = WebhookEvent.objects.filter(event_key__in=list(event_ids)).values_list(
        "event_key", "status", "items", "attempts", "error"
    )
    found = {
        key: (status, items, attempts, error)
        for key, status, items, attempts, error in events
    }
    statuses = Counter(status for status, *_ in found.values())
    missing = [key for key in event_ids if key not in found]
    lines = [f"  WebhookEvent statuses: {dict(statuses)}; never stored: {len(missing)}"]
    for key, (status, items, attempts, error) in list(found.items())[:8]:
        lines.append(
            f"    {key}: {status}, items={items}, attempts={attempts} {error[:120]}"
        )
    return "\n".join(lines)


def render(title: str, rows: list[Row], notes: Iterable[str] = ()) -> str:
    cells = [list(COLUMNS), *[row.cells() for row in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]

    def line(values: list[str]) -> str:
        return (
            "| "
            + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=False))
            + " |"
        )

    out = [f"### {title}", "", line(cells[0])]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [line(values) for values in cells[1:]]
    out += ["", *notes]
    return "\n".join(out) + "\n"


def publish(title: str, rows: list[Row], notes: Iterable[str] = ()) -> str:
    """Print the table and append it to artifacts/results.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    table = render(f"{title} ({stamp})", rows, notes)
    print("\n" + table)  # noqa: T201 - the suite's report, shown with -s
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(table + "\n")
    return table
