"""Recording delivery: claim, outcome, failure. helpdesk/tasks.py calls these
between its own transactions and does the network call outside any transaction.

At most once per Message (invariant 3): every delivery attempt has a token of its
own and first claims the row with a conditional update (scheduled → sending). A
`sending` row is taken over only once its claim's lease has run out, never sooner,
not even by a redelivered copy of the same task: a broker may redeliver a task whose
first copy is still running (a blip of the worker's connection), and both would
send. A takeover reconciles first: the connector is asked whether the reply reached
the platform before sending again. A transient failure hands the claim on to its
retry by letting the lease run out when the retry is due.

Batches (issue 12): a task claims its own reply and the tenant's other due replies
(claim_batch, SKIP LOCKED), each with the transition its own task would make; the
claims commit before any platform call, the calls run concurrently in the worker
(social.sending), and the outcomes are recorded together (record_deliveries).

Events (message.updated) take the tenant's event-counter row, which every write
of the tenant waits for until the transaction commits. Given an
`events.Pending`, the claims, the outcomes and the failures add their events to
it instead of storing them on their way; the caller (helpdesk.tasks) stores
them with the transaction's last statement, sent with COMMIT.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, F, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now
from django.utils import timezone

from helpdesk import events, metrics, publish
from helpdesk.models import Identity, Message
from helpdesk.services.bulkrows import update_rows
from helpdesk.services.replies import release_public_slot
from social.connectors.base import (
    AccountRef,
    ConnectorError,
    DeliveryResult,
    OutboundReply,
)
from social.models import SocialAccount, connector_ref
from tenants.context import current_tenant_id

Delivery = Message.DeliveryStatus

# How long an attempt may hold a claim before another attempt takes the reply over.
#
# Why a takeover cannot send twice. An attempt's claim (or, after reconciling, its
# renewal: renew_claims) restarts the lease right before it calls the platform, and
# the calls it then makes are bounded: every HTTP request of connector.send runs
# under SEND_BUDGET from that moment (social.http.deadline_at, one deadline for the
# whole batch; social.sending starts no call with less than a second left), which
# caps each connect, write and read to what is left of the budget, so by
# renewal + SEND_BUDGET the attempt has its answer or has given up on the request.
# A takeover needs claimed_at older than CLAIM_LEASE, and it reconciles first
# (connector.find_delivery) before sending. So when it looks, the old attempt's
# request ended at least CLAIM_LEASE - SEND_BUDGET (5 s) ago: a send the platform
# accepted is found, and the takeover is no riskier than an ordinary retry after a
# timeout. An attempt slower than the lease (stuck on the database, say) finds its
# renewal refused and stops without calling the platform.
# claimed_at is the database's clock (Now()), so workers' clocks cannot skew it.
#
# Worst case for a claim whose worker died: CLAIM_LEASE, then up to one SWEEP
# interval (helpdesk.settings CELERY_BEAT_SCHEDULE "sweep-outboxes", 10 s), then a
# queue hop: about 25 s. A redelivered task (RabbitMQ requeues a dead consumer's
# messages at once; Celery rejects a killed pool process's with
# reject_on_worker_lost) is an attempt like any other: it takes over when the lease
# has run out, else it leaves the reply to the sweep.
# A send gets less than the general request deadline (social.http.DEADLINE, 12 s):
# the shorter the budget, the shorter the lease, the sooner a dead claim is taken
# over.
SEND_BUDGET = 10.0
CLAIM_LEASE = timedelta(seconds=15)
# A scheduled reply this far past its time lost its task (a worker died holding its
# ETA message: Redis gives that back only after the visibility timeout). The sweep
# hands it out again at most once per CLAIM_LEASE (it stamps claimed_at), so a
# backlog of due tasks is not multiplied by every sweep.
STALE_SCHEDULED = timedelta(seconds=10)

# The outbox index (helpdesk_msg_outbox_ix) covers outbound rows only (WHERE
# direction = 'out'). Once psycopg prepares a statement, PostgreSQL may keep a
# generic plan, made without the parameters' values: with the direction as a
# parameter it cannot prove the index's condition and scans every message of the
# tenant (the outbox sweep's generic plan read all 32,000 of a bench tenant's
# messages, 95 ms, where its custom plan read the due rows). The direction is
# therefore written into the statements, never bound (the written-out ones below
# say 'out'; tests/helpdesk/test_generic_plans.py checks they use the index).
_OUTBOUND = RawSQL(  # noqa: S611 - a constant of the model, no input
    f'"{Message._meta.db_table}"."direction" = \'{Message.Direction.OUT.value}\'',
    (),
    BooleanField(),
)


@dataclass(frozen=True)
class DeliveryPlan:
    message_id: int
    platform: str
    account: AccountRef
    reply: OutboundReply
    reconcile: bool  # a previous attempt may have reached the platform
    attempts: int = 1  # claims of the message so far, this one included
    account_id: int | None = None  # the SocialAccount it goes out through


def claim_for_delivery(
    message_id: int,
    *,
    token: str,
    task_id: str | None = None,
    pending: events.Pending | None = None,
) -> DeliveryPlan | None:
    """Claim a due message for this attempt; None when there is nothing to send.

    Call inside the tenant's context; `token` is this attempt's own. Scheduled and
    due: claimed (scheduled → sending), with reconcile=True when an earlier attempt
    existed (an agent's retry of a failed reply). Already `sending` under an expired
    lease (its attempt died, or failed and this is its retry): taken over, with
    reconcile=True. Not yet due (edited hold, early task): re-enqueued for its time
    under `task_id`. Sending under a live lease, cancelled, sent or failed: None.
    `pending`: the claim's event goes there (see the module), else it is stored.
    """
    if not _claim(message_id, token=token, task_id=task_id):
        return None
    plans = _plans([message_id], pending)
    return plans[0] if plans else None


def claim_batch(
    message_id: int,
    *,
    token: str,
    task_id: str | None = None,
    limit: int = 1,
    drain: bool = False,
    pending: events.Pending | None = None,
    own_sent: bool = False,
) -> list[DeliveryPlan]:
    """Claim this task's message as claim_for_delivery does and, when it was
    claimed, up to `limit` - 1 more of the tenant's replies a task of their own
    would claim now: due scheduled ones, and `sending` ones whose lease ran out
    (their attempt died, or their retry is due; reconciled before any resend).
    Oldest due first, skipping rows another attempt has locked; the plans, this
    task's message first. Empty when this task's message was not claimed (the
    others have tasks of their own), unless `drain`: a task that stands for
    every reply of its due slot (helpdesk.services.delivery_slots), most of
    which have no task of their own, claims up to `limit` of them whatever
    became of its own message. Call inside the tenant's context; the claims
    hold once it commits, before any platform call.

    Each reply takes exactly the transition its own task would take (scheduled →
    sending, or a takeover; attempts + 1); its own task then finds it claimed or
    done and skips. `pending`: the claims' events go there (see the module),
    else they are stored at the end. `own_sent`: the caller knows this task's
    message was recorded sent (final), so its claim, which could only fail
    and find it not early, is not tried.
    """
    own = not own_sent and _claim(message_id, token=token, task_id=task_id)
    if not own and not drain:
        return []
    room = limit - 1 if own else limit
    others: list[int] = []
    if room > 0:
        tenant_id = current_tenant_id()
        if tenant_id is None:
            raise RuntimeError("claim_batch runs in a tenant's context")
        if connection.vendor == "postgresql":
            others = _claim_others(tenant_id, message_id, token=token, room=room)
            claimed = [message_id, *others] if own else others
            return _plans(claimed, pending) if claimed else []
        expired = Now() - CLAIM_LEASE
        others = list(
            Message.objects.filter(tenant_id=tenant_id, direction=Message.Direction.OUT)
            .filter(
                Q(delivery_status=Delivery.SCHEDULED, send_after__lte=timezone.now())
                | Q(delivery_status=Delivery.SENDING, claimed_at__lt=expired)
            )
            .exclude(pk=message_id)
            .order_by("send_after")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:room]
        )
        if others:
            # The rows are locked: the takeover cannot match a row just claimed
            # (its claimed_at is now), and nothing else can change them.
            Message.objects.filter(
                pk__in=others, delivery_status=Delivery.SENDING, claimed_at__lt=expired
            ).update(claim_token=token, claimed_at=Now(), attempts=F("attempts") + 1)
            Message.objects.filter(
                pk__in=others, delivery_status=Delivery.SCHEDULED
            ).update(
                delivery_status=Delivery.SENDING,
                claim_token=token,
                claimed_at=Now(),
                attempts=F("attempts") + 1,
            )
    claimed = [message_id, *others] if own else others
    return _plans(claimed, pending) if claimed else []


# The batch's statements written out (PostgreSQL): a claim_batch built and
# compiled four querysets (and a record two) for every batch, and made a model
# instance of every row with its conversation and account; these send the same
# work as one statement each and read plain tuples. SQLite (the demo) keeps the
# querysets. Every tenant table is filtered by the open tenant as its manager
# would (RLS as well); ids travel as one array.
def _id_array(ids: Iterable[int]) -> str:
    """Ids as a PostgreSQL array literal (the statements cast it to bigint[]):
    psycopg dumps a list parameter element by element in Python."""
    return "{" + ",".join(str(int(pk)) for pk in ids) + "}"


_CLAIM_OTHERS = """\
WITH picked AS (
    SELECT p."id" FROM "helpdesk_message" p
    WHERE p."tenant_id" = %(tenant)s AND p."direction" = 'out'
      AND ((p."delivery_status" = %(scheduled)s AND p."send_after" <= %(now)s)
           OR (p."delivery_status" = %(sending)s
               AND p."claimed_at"
                   < STATEMENT_TIMESTAMP() - %(lease)s * INTERVAL '1 second'))
      AND p."id" <> %(own)s
    ORDER BY p."send_after" LIMIT %(room)s FOR UPDATE SKIP LOCKED
)
UPDATE "helpdesk_message" m SET "delivery_status" = %(sending)s,
    "claim_token" = %(token)s, "claimed_at" = STATEMENT_TIMESTAMP(),
    "attempts" = m."attempts" + 1
FROM picked WHERE m."tenant_id" = %(tenant)s AND m."id" = picked."id"
RETURNING m."id", m."send_after"
"""


def _claim_others(
    tenant_id: int, message_id: int, *, token: str, room: int
) -> list[int]:
    """claim_batch's other replies in one statement: up to `room` due scheduled
    ones and `sending` ones whose lease ran out, oldest due first, skipping
    locked rows, each claimed as its own task would (scheduled → sending, or
    taken over; attempts + 1). Their ids, oldest due first."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_OTHERS,
            {
                "tenant": tenant_id,
                "scheduled": Delivery.SCHEDULED,
                "sending": Delivery.SENDING,
                "now": timezone.now(),
                "lease": CLAIM_LEASE.total_seconds(),
                "own": message_id,
                "room": room,
                "token": token,
            },
        )
        rows = cursor.fetchall()
    rows.sort(key=lambda row: (row[1], row[0]))
    return [row[0] for row in rows]


_UNCLAIMED = (
    'SELECT 1 FROM "helpdesk_message" m WHERE m."tenant_id" = %s'
    ' AND m."direction" = \'out\' AND m."delivery_status" = %s'
    ' AND m."send_after" <= %s'
    " LIMIT 1"
)


def unclaimed_by(due_by: datetime) -> bool:
    """Whether a scheduled reply of the tenant due by `due_by` is still
    unclaimed: after a draining claim_batch (in the same transaction), a reply
    of the slot it skipped (locked by another transaction: an edit, another
    batch's claim) or left for want of room. Call inside the tenant's context."""
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise RuntimeError("unclaimed_by runs in a tenant's context")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _UNCLAIMED,
                [tenant_id, Delivery.SCHEDULED, due_by],
            )
            return cursor.fetchone() is not None
    return Message.objects.filter(
        tenant_id=tenant_id,
        direction=Message.Direction.OUT,
        delivery_status=Delivery.SCHEDULED,
        send_after__lte=due_by,
    ).exists()


# _claim's statements written out (PostgreSQL): the conditional update of a
# due scheduled reply and the takeover of an expired claim as one UPDATE (a row
# matches one branch or neither; the takeover's status is `sending` already),
# and the early reply's read. Built as querysets they were compiled for every
# task: about a third of a slot task's claim in the worker.
_CLAIM_OWN = """\
UPDATE "helpdesk_message" m SET "delivery_status" = %(sending)s,
    "claim_token" = %(token)s, "claimed_at" = STATEMENT_TIMESTAMP(),
    "attempts" = m."attempts" + 1
WHERE m."tenant_id" = %(tenant)s AND m."id" = %(own)s
  AND ((m."delivery_status" = %(scheduled)s AND m."send_after" <= %(now)s)
       OR (m."delivery_status" = %(sending)s
           AND m."claimed_at"
               < STATEMENT_TIMESTAMP() - %(lease)s * INTERVAL '1 second'))"""
_EARLY = (
    'SELECT m."tenant_id", m."send_after" FROM "helpdesk_message" m'
    ' WHERE m."tenant_id" = %s AND m."id" = %s AND m."delivery_status" = %s'
    ' AND m."send_after" > %s LIMIT 1'
)


def _claim(message_id: int, *, token: str, task_id: str | None) -> bool:
    """The claim of one message (see claim_for_delivery); True when it is ours."""
    now = timezone.now()
    tenant_id = current_tenant_id()
    if connection.vendor == "postgresql" and tenant_id is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                _CLAIM_OWN,
                {
                    "sending": Delivery.SENDING,
                    "scheduled": Delivery.SCHEDULED,
                    "token": token,
                    "tenant": tenant_id,
                    "own": message_id,
                    "now": now,
                    "lease": CLAIM_LEASE.total_seconds(),
                },
            )
            if cursor.rowcount:
                return True
            cursor.execute(_EARLY, [tenant_id, message_id, Delivery.SCHEDULED, now])
            early = cursor.fetchone()
        if early is not None:
            _reschedule(message_id, *early, task_id=task_id or token)
        return False
    claimed = Message.objects.filter(
        pk=message_id, delivery_status=Delivery.SCHEDULED, send_after__lte=now
    ).update(
        delivery_status=Delivery.SENDING,
        claim_token=token,
        claimed_at=Now(),
        attempts=F("attempts") + 1,
    )
    if claimed:
        return True
    taken_over = Message.objects.filter(
        pk=message_id,
        delivery_status=Delivery.SENDING,
        claimed_at__lt=Now() - CLAIM_LEASE,
    ).update(claim_token=token, claimed_at=Now(), attempts=F("attempts") + 1)
    if not taken_over:
        _reschedule_if_early(message_id, now, task_id=task_id or token)
        return False
    return True


# The fields a plan is made of (the message, what _outbound reads of its
# conversation, what connector_ref reads of its account): a batch's 100 rows
# loaded whole were 97 fields each, the conversation's 50 among them.
_PLAN_FIELDS = (
    "tenant_id",
    "conversation_id",
    "account_id",
    "platform",
    "visibility",
    "text",
    "client_ref",
    "attempts",
    "conversation__brand_id",
    "conversation__contact_id",
    "conversation__public_thread_ref",
    "conversation__private_thread_ref",
    "account__tenant_id",
    "account__platform",
    "account__external_id",
    "account__handle",
    "account__credentials",
    "account__base_url",
)
# What record_deliveries reads and writes of a sent reply and its conversation.
_RECORD_FIELDS = (
    "tenant_id",
    "conversation_id",
    "platform",
    "delivery_status",
    "external_id",
    "external_url",
    "sent_at",
    "last_error",
    "conversation__brand_id",
)


class _PlanRow(NamedTuple):
    """What a plan is made of: a claimed message, what _outbound reads of its
    conversation, and its account (None: the conversation has none)."""

    pk: int
    tenant_id: int
    conversation_id: int
    account_id: int | None
    platform: str
    visibility: str
    text: str
    client_ref: Any
    attempts: int
    brand_id: int
    contact_id: int | None
    public_thread_ref: str
    private_thread_ref: str
    account: SocialAccount | None
    answered: str | None
    recipient: str | None


# _plan_rows' statement: the fields of _PLAN_FIELDS, the latest inbound
# message of the same visibility and the contact's id on the platform, as the
# querysets of _plan_rows_orm read them.
_PLAN_ROWS = """\
SELECT m."id", m."tenant_id", m."conversation_id", m."account_id", m."platform",
    m."visibility", m."text", m."client_ref", m."attempts",
    c."brand_id", c."contact_id", c."public_thread_ref", c."private_thread_ref",
    a."id", a."tenant_id", a."platform", a."external_id", a."handle",
    a."credentials", a."base_url",
    (SELECT i."external_id" FROM "helpdesk_message" i
     WHERE i."tenant_id" = %(tenant)s AND i."conversation_id" = m."conversation_id"
       AND i."direction" = %(in)s AND i."visibility" = m."visibility"
     ORDER BY i."created_at" DESC LIMIT 1),
    (SELECT d."external_id" FROM "helpdesk_identity" d
     WHERE d."tenant_id" = %(tenant)s AND d."contact_id" = c."contact_id"
       AND d."platform" = m."platform"
     ORDER BY d."platform" ASC, d."handle" ASC LIMIT 1)
FROM "helpdesk_message" m
INNER JOIN "helpdesk_conversation" c ON (m."conversation_id" = c."id")
LEFT OUTER JOIN "social_socialaccount" a ON (m."account_id" = a."id")
WHERE m."tenant_id" = %(tenant)s AND m."id" = ANY(%(ids)s::bigint[])"""


def _plan_rows(tenant_id: int, message_ids: list[int]) -> dict[int, _PlanRow]:
    """The plan rows of `message_ids` in one statement (PostgreSQL), as tuples;
    one account instance per account of the batch."""
    with connection.cursor() as cursor:
        cursor.execute(
            _PLAN_ROWS,
            {
                "tenant": tenant_id,
                "in": Message.Direction.IN,
                "ids": _id_array(message_ids),
            },
        )
        found = cursor.fetchall()
    accounts: dict[int, SocialAccount] = {}
    rows: dict[int, _PlanRow] = {}
    for (*message, account_id, account_tenant, platform, external_id, handle,
         credentials, base_url, answered, recipient) in found:  # fmt: skip
        account = None
        if account_id is not None:
            account = accounts.get(account_id)
            if account is None:
                account = accounts[account_id] = SocialAccount(
                    pk=account_id,
                    tenant_id=account_tenant,
                    platform=platform,
                    external_id=external_id,
                    handle=handle,
                    credentials=credentials,
                    base_url=base_url,
                )
        rows[message[0]] = _PlanRow._make((*message, account, answered, recipient))
    return rows


def _plan_rows_orm(message_ids: list[int]) -> dict[int, _PlanRow]:
    """_plan_rows through querysets (the demo's SQLite)."""
    inbound = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"),
        direction=Message.Direction.IN,
        visibility=OuterRef("visibility"),
    ).order_by("-created_at")
    identity = Identity.objects.filter(
        contact_id=OuterRef("conversation__contact_id"), platform=OuterRef("platform")
    ).order_by("platform", "handle")
    return {
        message.pk: _PlanRow(
            message.pk,
            message.tenant_id,
            message.conversation_id,
            message.account_id,
            message.platform,
            message.visibility,
            message.text,
            message.client_ref,
            message.attempts,
            message.conversation.brand_id,
            message.conversation.contact_id,
            message.conversation.public_thread_ref,
            message.conversation.private_thread_ref,
            message.account,
            message.answered,
            message.recipient,
        )
        for message in Message.objects.filter(pk__in=message_ids)
        .select_related("conversation", "account")
        .only(*_PLAN_FIELDS)
        .annotate(
            answered=Subquery(inbound.values("external_id")[:1]),
            recipient=Subquery(identity.values("external_id")[:1]),
        )
    }


def _plans(
    message_ids: list[int], pending: events.Pending | None = None
) -> list[DeliveryPlan]:
    """What to send for freshly claimed messages, in the order given (one query
    whatever their number); one `sending` event each, added to `pending` (else
    stored at the end). A message without an account fails at once and has no
    plan."""
    tenant_id = current_tenant_id()
    if connection.vendor == "postgresql" and tenant_id is not None:
        messages = _plan_rows(tenant_id, message_ids)
    else:
        messages = _plan_rows_orm(message_ids)
    plans: list[DeliveryPlan] = []
    sending: list[events.EventSpec] = []
    into = (
        pending
        if pending is not None
        else events.Pending(messages[message_ids[0]].tenant_id)
    )
    # One decryption of an account's credentials per batch, not one per reply.
    refs: dict[int, AccountRef] = {}
    for message_id in message_ids:
        message = messages[message_id]
        if message.account is None:
            record_failure(
                message.pk,
                ConnectorError(
                    "The conversation has no connected account.", permanent=True
                ),
                final=True,
                pending=into,
            )
            continue
        ref = refs.get(message.account.pk)
        if ref is None:
            ref = refs[message.account.pk] = connector_ref(message.account)
        sending.append(
            (
                "message.updated",
                {
                    "conversation_id": message.conversation_id,
                    "brand_id": message.brand_id,
                    "message_id": message.pk,
                    "changed": {"delivery_status": Delivery.SENDING},
                },
            )
        )
        plans.append(
            DeliveryPlan(
                message_id=message.pk,
                platform=message.platform,
                account=ref,
                reply=_outbound(message),
                # attempts counts this claim: more than one means an attempt
                # before this one may have reached the platform.
                reconcile=message.attempts > 1,
                attempts=message.attempts,
                account_id=message.account_id,
            )
        )
    into.extend(sending)
    if pending is None:
        into.emit()
    return plans


def renew_claim(message_id: int, *, token: str) -> bool:
    """Restart this attempt's lease just before it calls the platform.

    False when the claim is no longer this attempt's (taken over after its lease ran
    out, or finished): the attempt must not send.
    """
    return bool(
        Message.objects.filter(
            pk=message_id, delivery_status=Delivery.SENDING, claim_token=token
        ).update(claimed_at=Now())
    )


def _reschedule_if_early(message_id: int, now: datetime, *, task_id: str) -> None:
    """Re-enqueue a task that came before the reply's time (an edited hold).

    The copy keeps this task's id, and this message is acknowledged when the task
    returns: one message in, one out, so redelivered duplicates cannot multiply.
    """
    early = (
        Message.objects.filter(
            pk=message_id, delivery_status=Delivery.SCHEDULED, send_after__gt=now
        )
        .values_list("tenant_id", "send_after")
        .first()
    )
    if early is not None:
        _reschedule(message_id, *early, task_id=task_id)


def _reschedule(
    message_id: int, tenant_id: int, eta: datetime | None, *, task_id: str
) -> None:
    """_reschedule_if_early's copy of the task, queued after commit."""
    transaction.on_commit(
        lambda: publish.task("helpdesk.deliver_message").apply_async(
            (tenant_id, message_id), eta=eta, task_id=task_id
        )
    )


def _outbound(message: _PlanRow) -> OutboundReply:
    """The reply to send. `answered`: the latest inbound message of the same
    visibility in the conversation; `recipient`: the contact's id on the platform."""
    public = message.visibility == Message.Visibility.PUBLIC
    private_reply = not public and not message.private_thread_ref
    in_reply_to = (
        (message.answered or message.public_thread_ref)
        if public or private_reply
        else message.private_thread_ref
    )
    return OutboundReply(
        client_ref=str(message.client_ref),
        text=message.text,
        visibility=message.visibility,
        in_reply_to=in_reply_to or "",
        recipient_id=(message.recipient or "") if message.contact_id else "",
        private_reply_to_public=private_reply,
    )


def renew_claims(message_ids: list[int], *, token: str) -> set[int]:
    """renew_claim for several messages at once: those still this attempt's."""
    claimed = Message.objects.filter(
        pk__in=message_ids, delivery_status=Delivery.SENDING, claim_token=token
    )
    ours = set(claimed.values_list("pk", flat=True))
    if ours:
        Message.objects.filter(pk__in=ours).update(claimed_at=Now())
    return ours


def record_deliveries(
    results: dict[int, DeliveryResult], *, pending: events.Pending | None = None
) -> list[int]:
    """record_delivery for a batch: the locking read, one UPDATE from arrays (in a
    savepoint) and one event insert whatever its size, or none with `pending`:
    the events go there (see the module). Returns the ids marked sent (those
    still `sending`).

    A platform id another message already holds (the unique
    helpdesk_message_platform_ext_uniq), or that an earlier reply of the batch
    got, fails only its own reply (record_failure, permanent, last_error naming
    the id and its holder); the rest of the batch is recorded. Without this one
    collision would roll the whole batch back and leave every reply `sending`,
    taken over and reconciled by every sweep, forever."""
    if not results:
        return []
    if connection.vendor == "postgresql":
        recorded = _record_sent(results, pending)
        if recorded is not None:
            return recorded
    messages = list(
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .only(*_RECORD_FIELDS)
        .filter(pk__in=list(results), delivery_status=Delivery.SENDING)
        .order_by("pk")
    )
    if not messages:
        return []
    into = pending if pending is not None else events.Pending(messages[0].tenant_id)
    now = timezone.now()
    for message in messages:
        result = results[message.pk]
        message.delivery_status = Delivery.SENT
        message.external_id = result.external_id
        message.external_url = result.url
        message.sent_at = result.sent_at or now
        message.last_error = ""
    collided = _batch_duplicates(messages)
    while True:
        kept = [message for message in messages if message.pk not in collided]
        try:
            # A savepoint: a collision the batch could not see (a row recorded
            # since) undoes only this statement, not the claims' transaction.
            with transaction.atomic():
                # One UPDATE from arrays (bulkrows): bulk_update's CASE per row
                # and field was most of the recording's CPU for a batch of 100.
                update_rows(
                    kept,
                    [
                        "delivery_status",
                        "external_id",
                        "external_url",
                        "sent_at",
                        "last_error",
                    ],
                )
            break
        except IntegrityError:
            taken = _held_elsewhere(kept)
            if not taken:
                raise
            collided.update(taken)
    for message in messages:
        if message.pk in collided:
            holder = collided[message.pk]
            record_failure(
                message.pk,
                _collision(message.external_id or "", holder),
                final=True,
                pending=into,
            )
    messages = kept
    metrics.count_deliveries(messages, "sent")
    into.extend(
        _sent_event(
            message.conversation_id,
            message.conversation.brand_id,
            message.pk,
            message.external_url,
        )
        for message in messages
    )
    if pending is None:
        into.emit()
    return [message.pk for message in messages]


# _record_sent's statement: the batch's rows still `sending` locked in id
# order (as record_deliveries' locking read takes them), then marked sent with
# their platform ids from one array per column.
_RECORD_SENT = """\
WITH locked AS (
    SELECT l."id" FROM "helpdesk_message" l
    WHERE l."tenant_id" = %(tenant)s AND l."id" = ANY(%(ids)s::bigint[])
      AND l."delivery_status" = %(sending)s
    ORDER BY l."id" FOR UPDATE
)
UPDATE "helpdesk_message" m SET "delivery_status" = %(sent)s,
    "external_id" = v."external_id", "external_url" = v."external_url",
    "sent_at" = v."sent_at", "last_error" = ''
FROM locked, jsonb_to_recordset(%(rows)s::jsonb)
    AS v("id" bigint, "external_id" text, "external_url" text, "sent_at" timestamptz)
WHERE m."tenant_id" = %(tenant)s AND m."id" = locked."id" AND v."id" = locked."id"
RETURNING m."id", m."conversation_id", m."platform", m."external_url",
    (SELECT c."brand_id" FROM "helpdesk_conversation" c
     WHERE c."tenant_id" = %(tenant)s AND c."id" = m."conversation_id")"""


class _Sent(NamedTuple):
    pk: int
    conversation_id: int
    platform: str
    external_url: str
    brand_id: int


def _record_sent(
    results: dict[int, DeliveryResult], pending: events.Pending | None
) -> list[int] | None:
    """record_deliveries in one statement (PostgreSQL, in a savepoint), when no
    platform id can collide: None, with nothing written, when two results share
    one or a row of the tenant already holds one (the caller then takes the
    careful way, which fails each colliding reply alone)."""
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise RuntimeError("record_deliveries runs in a tenant's context")
    external_ids = [result.external_id for result in results.values()]
    named = [external_id for external_id in external_ids if external_id is not None]
    if len(set(named)) != len(named):
        return None
    now = timezone.now()
    # The outcomes as one JSON document (orjson): psycopg dumps a list
    # parameter element by element in Python, most of the record's CPU.
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "ids": _id_array(results),
        "sending": Delivery.SENDING,
        "sent": Delivery.SENT,
        "rows": orjson.dumps(
            [
                {
                    "id": message_id,
                    "external_id": result.external_id,
                    "external_url": result.url,
                    "sent_at": result.sent_at or now,
                }
                for message_id, result in results.items()
            ]
        ).decode(),
    }
    try:
        # A savepoint: a collision undoes only this statement, not the
        # transaction.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_RECORD_SENT, params)
            rows = cursor.fetchall()
    except IntegrityError:
        return None
    sent = sorted((_Sent(*row) for row in rows), key=lambda row: row.pk)
    if not sent:
        return []
    into = pending if pending is not None else events.Pending(tenant_id)
    metrics.count_deliveries(sent, "sent")
    into.extend(
        _sent_event(row.conversation_id, row.brand_id, row.pk, row.external_url)
        for row in sent
    )
    if pending is None:
        into.emit()
    return [row.pk for row in sent]


def _collision(external_id: str, holder: int) -> ConnectorError:
    """The permanent failure of a reply the platform gave `external_id`, which
    message `holder` already has."""
    return ConnectorError(
        f"The platform answered with id {external_id}, which message {holder}"
        " already has: not recorded as sent.",
        permanent=True,
    )


def _batch_duplicates(messages: list[Message]) -> dict[int, int]:
    """Replies of a batch given a platform id an earlier one of the batch (lower
    pk) got: {message id: the holder's id}."""
    first: dict[tuple[str, str], int] = {}
    duplicates: dict[int, int] = {}
    for message in messages:
        if message.external_id is None:
            continue
        holder = first.setdefault((message.platform, message.external_id), message.pk)
        if holder != message.pk:
            duplicates[message.pk] = holder
    return duplicates


def _held_elsewhere(messages: list[Message]) -> dict[int, int]:
    """Of `messages` (about to be recorded with their platform ids), those whose id
    another message of the tenant holds: {message id: the holder's id}."""
    wanted: dict[tuple[str, str | None], int] = {
        (m.platform, m.external_id): m.pk for m in messages if m.external_id is not None
    }
    if not wanted:
        return {}
    holders = (
        Message.objects.filter(
            tenant_id=messages[0].tenant_id,
            external_id__in={external_id for _platform, external_id in wanted},
        )
        .exclude(pk__in=[m.pk for m in messages])
        .values_list("platform", "external_id", "pk")
    )
    return {
        wanted[(platform, external_id)]: pk
        for platform, external_id, pk in holders
        if (platform, external_id) in wanted
    }


def record_delivery(message_id: int, result: DeliveryResult) -> Message | None:
    """Mark a claimed message sent with the platform's id. Idempotent.

    A platform id another message of the tenant already holds (the unique
    helpdesk_message_platform_ext_uniq) fails the reply instead, as in
    record_deliveries: permanently, last_error naming the id and its holder, and
    None is returned. Raising instead would roll the caller's transaction back and
    leave the reply `sending`, taken over and failed again by every sweep."""
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .get(pk=message_id)
    )
    if message.delivery_status != Delivery.SENDING:
        return None
    message.delivery_status = Delivery.SENT
    message.external_id = result.external_id
    message.external_url = result.url
    message.sent_at = result.sent_at or timezone.now()
    message.last_error = ""
    try:
        # A savepoint: the collision undoes only this UPDATE, not the claim's
        # transaction, which goes on to record the failure.
        with transaction.atomic():
            message.save(
                update_fields=[
                    "delivery_status",
                    "external_id",
                    "external_url",
                    "sent_at",
                    "last_error",
                ]
            )
    except IntegrityError:
        holder = _held_elsewhere([message]).get(message.pk)
        if holder is None:
            raise
        record_failure(
            message.pk,
            _collision(message.external_id or "", holder),
            final=True,
        )
        return None
    metrics.count_deliveries([message], "sent")
    events.emit(
        message.tenant_id,
        "message.updated",
        conversation_id=message.conversation_id,
        brand_id=message.conversation.brand_id,
        message_id=message.pk,
        changed={"delivery_status": Delivery.SENT, "external_url": result.url},
    )
    return message


def record_failure(
    message_id: int,
    error: ConnectorError,
    *,
    final: bool,
    retry_in: float = 0.0,
    pending: events.Pending | None = None,
) -> Message | None:
    """Record a failed attempt.

    A permanent error, or the last retry, marks the message failed with the
    platform's message and frees its public slot; the agent sees it and can retry.
    A transient error keeps the message `sending` (it may have reached the platform,
    so the next attempt reconciles first) and sets the claim's lease to run out in
    `retry_in` seconds, when the task's retry is due: the retry takes it over, and
    the sweep leaves it alone until then. `pending`: the message's event goes
    there (see the module), else it is stored at once.
    """
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .get(pk=message_id)
    )
    if message.delivery_status != Delivery.SENDING:
        return None
    message.last_error = error.message[:2000]
    fields = ["last_error"]
    if error.permanent or final:
        message.delivery_status = Delivery.FAILED
        fields.append("delivery_status")
    else:
        message.claimed_at = Now() + (timedelta(seconds=retry_in) - CLAIM_LEASE)
        fields.append("claimed_at")
    message.save(update_fields=fields)
    metrics.count_delivery_failure(message)
    if message.delivery_status == Delivery.FAILED:
        release_public_slot(message)
    update: events.EventSpec = (
        "message.updated",
        {
            "conversation_id": message.conversation_id,
            "brand_id": message.conversation.brand_id,
            "message_id": message.pk,
            "changed": {
                "delivery_status": message.delivery_status,
                "last_error": message.last_error,
            },
        },
    )
    if pending is None:
        events.emit_many(message.tenant_id, [update])
    else:
        pending.extend([update])
    return message


def stale_deliveries(*, now: datetime | None = None) -> list[int]:
    """Outbound messages a sweeper should hand to the task again.

    Scheduled ones past their time by STALE_SCHEDULED (the task was lost) and not
    handed out in the last CLAIM_LEASE, and `sending` claims whose lease expired (the
    attempt died). Scheduled ones are stamped (claimed_at) as handed out.
    """
    moment = now or timezone.now()
    lease_ago = Now() - CLAIM_LEASE if now is None else moment - CLAIM_LEASE
    outbound = Message.objects.filter(_OUTBOUND)
    lost = outbound.filter(
        delivery_status=Delivery.SCHEDULED,
        send_after__lt=moment - STALE_SCHEDULED,
    ).filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=lease_ago))
    lost_ids = list(lost.values_list("pk", flat=True)[:500])
    if lost_ids:
        Message.objects.filter(
            pk__in=lost_ids, delivery_status=Delivery.SCHEDULED
        ).update(claimed_at=Now())
    dead = outbound.filter(delivery_status=Delivery.SENDING, claimed_at__lt=lease_ago)
    return lost_ids + list(dead.values_list("pk", flat=True)[: 500 - len(lost_ids)])


def wake_replies(account_ids: list[int]) -> list[int]:
    """Replies of the accounts waiting out a backoff (`sending`, their lease set to
    run out in the future by record_failure), made due now: their platform works
    again (social.health.mark_healthy). Returns their ids for the caller to hand
    to delivery after commit.

    A claim stamps claimed_at with the database's clock, never later, so a future
    claimed_at is a reply between attempts, never one whose call is in flight; its
    takeover reconciles first (attempts > 1) as any retry does.
    """
    if not account_ids:
        return []
    waiting = Message.objects.filter(
        _OUTBOUND,
        account_id__in=account_ids,
        delivery_status=Delivery.SENDING,
        claimed_at__gt=Now(),
    )
    ids = list(waiting.values_list("pk", flat=True)[:500])
    if ids:
        Message.objects.filter(
            pk__in=ids, delivery_status=Delivery.SENDING, claimed_at__gt=Now()
        ).update(claimed_at=Now() - CLAIM_LEASE - timedelta(seconds=1))
    return ids


def _sent_event(
    conversation_id: int, brand_id: int, message_id: int, external_url: str | None
) -> tuple[events.DurableType, dict[str, Any]]:
    """The `message.updated` event of a reply recorded as sent."""
    return (
        "message.updated",
        {
            "conversation_id": conversation_id,
            "brand_id": brand_id,
            "message_id": message_id,
            "changed": {"delivery_status": Delivery.SENT, "external_url": external_url},
        },
    )
