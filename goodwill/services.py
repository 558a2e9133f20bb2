"""Goodwill gestures: pools of single-use codes and the one-click private reply.

Decisions:
- A code goes only in a private reply (a public code is anyone's).
- One click claims the pool's oldest free code and queues the private reply with
  it, in one transaction: the reply goes through `post_reply`, so every reply rule
  and the hold (R5) apply, and a refusal claims nothing.
- Concurrent clicks: the claim takes its code with `FOR UPDATE SKIP LOCKED`, so
  two clicks never take the same code and a click that finds every code taken or
  locked gets "pool empty" at once instead of waiting.
- Undo during the hold gives the code back: a code is free while its reply is
  cancelled (`goodwill.selectors.FREE`), and the next claim may take it again.
  A reply that failed on the platform keeps its code (a retry sends it).
- An import is all or nothing: any malformed or duplicate line refuses the lot,
  each bad line reported with its number and reason.
- The admins get one email per crossing of the low-water mark (on the way down;
  back at or above the mark re-arms it).
- Every composer shows a live count: a claim and an import push `goodwill.pool`
  (pool id, brand id, codes left) to the workspace's sockets after commit, and
  each open composer with that pool fetches its row again (frontend goodwill.js).
  The push is ephemeral (not replayed): a reopened composer reads the count anew.
"""

import csv
import io
import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from goodwill.exceptions import (
    CodeImportInvalid,
    GoodwillInvalid,
    GoodwillPrivateOnly,
    PoolEmpty,
)
from goodwill.models import CODE_MAX_LENGTH, GoodwillCode, GoodwillPool
from goodwill.selectors import available_codes
from helpdesk import events
from helpdesk.models import Conversation, Message
from helpdesk.publish import enqueue_task_on_commit
from helpdesk.services.replies import ReplyOutcome, post_reply
from tenants.access import require_role
from tenants.models import Brand, Membership
from tenants.services import record_audit

ADMIN = Membership.Role.ADMIN
PRIVATE = Message.Visibility.PRIVATE
CODE_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_-]{{2,{CODE_MAX_LENGTH - 1}}}$")
MAX_IMPORT_LINES = 10_000
LOW_WATER_MAX = 100_000


def create_goodwill_pool(
    membership: Membership,
    *,
    brand: Brand,
    name: str,
    description: str = "",
    low_water_mark: int = 10,
) -> GoodwillPool:
    """Add a brand's pool (admins and owners). Raises GoodwillInvalid on `name`
    when the brand has a pool of that name. Audited."""
    require_role(membership, ADMIN)
    clean = name.strip()
    if not clean:
        raise GoodwillInvalid("Give the pool a name.", field="name")
    try:
        with transaction.atomic():
            pool = GoodwillPool.objects.create(
                brand=brand,
                name=clean,
                description=description.strip(),
                low_water_mark=low_water_mark,
            )
    except IntegrityError:
        raise GoodwillInvalid(
            f"{brand.name} already has a pool named “{clean}”.", field="name"
        ) from None
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="goodwill.pool_created",
        obj=pool,
        data={"brand_id": brand.pk},
    )
    return pool


def update_goodwill_pool(
    membership: Membership,
    pool: GoodwillPool,
    *,
    description: str | None = None,
    low_water_mark: int | None = None,
) -> GoodwillPool:
    """Change a pool's description or low-water mark (admins and owners)."""
    require_role(membership, ADMIN)
    changed = []
    if description is not None:
        pool.description = description.strip()
        changed.append("description")
    if low_water_mark is not None:
        pool.low_water_mark = low_water_mark
        changed.append("low_water_mark")
    if changed:
        with transaction.atomic():
            pool.save(update_fields=changed)
            _check_low_water(pool)
    return pool


@dataclass(frozen=True)
class BadLine:
    line: int
    text: str
    reason: str


def parse_codes(text: str) -> tuple[list[tuple[int, str]], list[BadLine]]:
    """The codes of pasted lines or a CSV (first column; a first line "code" is a
    header), with their line numbers, and the malformed lines. Blank lines are
    skipped."""
    codes: list[tuple[int, str]] = []
    bad: list[BadLine] = []
    rows = csv.reader(io.StringIO(text))
    for number, row in enumerate(rows, start=1):
        value = row[0].strip() if row else ""
        if not value and not any(cell.strip() for cell in row):
            continue
        if number == 1 and value.lower() in {"code", "codes"}:
            continue
        if not CODE_PATTERN.match(value):
            bad.append(
                BadLine(
                    number,
                    value[:80],
                    f"not a code: use 3 to {CODE_MAX_LENGTH} letters, digits, "
                    "dashes or underscores, starting with a letter or digit",
                )
            )
            continue
        codes.append((number, value))
    return codes, bad


def import_goodwill_codes(
    membership: Membership, pool: GoodwillPool, *, text: str
) -> int:
    """Add the codes of `text` to the pool, all or none (admins and owners).

    Raises CodeImportInvalid (details.lines: line, text, reason per bad line)
    when a line is malformed, repeats an earlier line, or holds a code the pool
    already has; nothing is imported then. Returns how many codes were added.
    """
    require_role(membership, ADMIN)
    try:
        codes, bad = parse_codes(text)
    except csv.Error as error:
        raise CodeImportInvalid(
            f"The file is not readable as lines or CSV: {error}.", field="codes"
        ) from None
    if len(codes) + len(bad) > MAX_IMPORT_LINES:
        raise CodeImportInvalid(
            f"Import at most {MAX_IMPORT_LINES} codes at a time.", field="codes"
        )
    first_seen: dict[str, int] = {}
    for number, code in codes:
        if code in first_seen:
            bad.append(BadLine(number, code, f"duplicate of line {first_seen[code]}"))
        else:
            first_seen[code] = number
    with transaction.atomic():
        locked = GoodwillPool.objects.select_for_update().get(pk=pool.pk)
        existing = set(
            GoodwillCode.objects.filter(
                pool=locked, code__in=list(first_seen)
            ).values_list("code", flat=True)
        )
        bad.extend(
            BadLine(first_seen[code], code, "already in this pool")
            for code in sorted(existing, key=first_seen.__getitem__)
        )
        if bad:
            bad.sort(key=lambda b: b.line)
            raise CodeImportInvalid(
                f"{len(bad)} line{'' if len(bad) == 1 else 's'} cannot be imported; "
                "nothing was imported. Fix them and import the file again.",
                field="codes",
                lines=[vars(b) for b in bad],
            )
        if not first_seen:
            raise CodeImportInvalid("Paste or upload at least one code.", field="codes")
        GoodwillCode.objects.bulk_create(
            GoodwillCode(pool=locked, code=code) for code in first_seen
        )
        _push_pool(locked, _check_low_water(locked))
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="goodwill.codes_imported",
            obj=locked,
            data={"count": len(first_seen)},
        )
    return len(first_seen)


@dataclass
class GestureOutcome:
    reply: ReplyOutcome
    code: GoodwillCode
    available: int


def send_goodwill_reply(
    conversation: Conversation,
    *,
    membership: Membership,
    pool: GoodwillPool,
    text: str,
    visibility: str | None = None,
    confirm: Collection[str] = (),
) -> GestureOutcome:
    """Queue a private reply with one code of `pool` (the composer's one click).

    Raises GoodwillPrivateOnly when the reply would be public (the chosen or the
    conversation's visibility), GoodwillInvalid on `pool_id` when the pool is
    another brand's, PoolEmpty when no code is free (a concurrent click took the
    last one), and whatever `post_reply` raises; nothing is claimed then. The
    code is appended to the text ("<pool name>: <code>"). When the pool goes
    below its low-water mark, the admins are emailed on commit (once per
    crossing).
    """
    chosen = visibility or conversation.channel_state
    if chosen != PRIVATE:
        raise GoodwillPrivateOnly(
            "A goodwill code goes only in a private reply: anyone can read a public "
            "one. Switch to Private, or move the conversation to private first.",
            field="visibility",
        )
    if pool.brand_id != conversation.brand_id:
        raise GoodwillInvalid(
            "This pool belongs to another brand than the conversation's.",
            field="pool_id",
        )
    with transaction.atomic():
        code = (
            available_codes(pool)
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if code is None:
            raise PoolEmpty(
                f"“{pool.name}” is empty: no code is left. Ask an admin to import "
                "more; nothing was sent.",
                field="pool_id",
            )
        outcome = post_reply(
            conversation,
            membership=membership,
            text=f"{text.strip()}\n\n{pool.name}: {code.code}" if text.strip() else "",
            visibility=PRIVATE,
            confirm=confirm,
        )
        code.message = outcome.message
        code.conversation = conversation
        code.claimed_by = membership.user
        code.claimed_at = timezone.now()
        code.follower_band = conversation.follower_band
        code.save(
            update_fields=[
                "message",
                "conversation",
                "claimed_by",
                "claimed_at",
                "follower_band",
            ]
        )
        available = _check_low_water(pool)
        _push_pool(pool, available)
    return GestureOutcome(outcome, code, available)


def _push_pool(pool: GoodwillPool, available: int) -> None:
    """Tell the workspace's open composers, after commit, that the pool's count
    changed (`goodwill.pool`, ephemeral)."""
    payload = {
        "type": "goodwill.pool",
        "pool_id": pool.pk,
        "brand_id": pool.brand_id,
        "available": available,
    }
    group = events.inbox_group(pool.tenant_id)
    transaction.on_commit(partial(events.send_to_group, group, payload))


def _check_low_water(pool: GoodwillPool) -> int:
    """Arm or re-arm the pool's low warning; email the admins on the way down.

    Conditional updates, so of two concurrent claims that cross the mark only
    one sends the email. Returns the free codes left.
    """
    available = available_codes(pool).count()
    pools = GoodwillPool.objects.filter(pk=pool.pk)
    if available >= pool.low_water_mark:
        pools.filter(low_since__isnull=False).update(low_since=None)
        return available
    if pools.filter(low_since__isnull=True).update(low_since=timezone.now()):
        enqueue_task_on_commit(
            "goodwill.send_low_pool_email",
            pool.tenant_id,
            pool.pk,
            swept_by=None,
        )
    return available
