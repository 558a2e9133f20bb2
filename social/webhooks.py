"""Webhook receivers: verify, store raw, enqueue, answer fast (DESIGN §2, invariant 2).

A delivery is acknowledged only after its raw body is committed as a WebhookEvent;
processing happens in `social.process_webhook_event`. Stored means processed: the
200 does not depend on the broker (a task that could not be queued is queued by the
sweep, `social.sweep_webhook_events`), and only a delivery that could not be stored
is refused, with 503 and Retry-After, so that the platform retries it. A replayed
delivery (same event key) is acknowledged, and queued again while the first copy is
still unprocessed. Unsigned or wrongly signed requests get 401 and are not stored;
signed but malformed bodies get 400 and are kept.
"""

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache, partial
from typing import Any

import psycopg
from django.conf import settings
from django.core.signals import setting_changed
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from social.config import app_secrets
from social.connectors import get_connector
from social.connectors.base import Connector, ConnectorError
from social.connectors.text import load_json
from social.models import WebhookEvent
from tenants.outages import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)

# Events a replayed delivery queues again: not processed yet, or given up.
PENDING = (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED)
STORE_FAILED = "the delivery could not be stored right now; retry later"
KEY_LENGTH = 128
# The INSERT's columns (items and attempts are 0), its conflict target and RETURNING.
COLUMNS = (
    "platform",
    "event_key",
    "body",
    "headers_digest",
    "status",
    "error",
    "items",
    "attempts",
    "received_at",
)
UNIQUE = ("platform", "event_key")
UNIQUE_CONSTRAINT = "social_webhook_uniq"
# Groups inserted with ON CONFLICT DO NOTHING straight away after one that met a
# stored key (`_insert_new`).
CONFLICT_RUN = 64
RETURNED = ("id", "platform", "event_key")


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def delivery_answer(status: int, payload: dict[str, str]) -> JsonResponse:
    """The JSON answer to a delivery; a 503 tells the platform when to retry."""
    response = JsonResponse(payload, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def receive_webhook(request: HttpRequest, platform: str) -> HttpResponse:
    """`/hooks/<platform>/`: the platform's GET check, or one POSTed delivery."""
    if request.method == "POST":
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(400, "Content-Length is not a number")
        if declared > settings.WEBHOOK_MAX_BYTES:
            return _error(413, f"body over {settings.WEBHOOK_MAX_BYTES} bytes")
        headers = {key.lower(): value for key, value in request.headers.items()}
        status, acknowledgement = accept_delivery(platform, request.body, headers)
        return delivery_answer(status, acknowledgement)
    if platform not in settings.SOCIAL_PLATFORMS:
        return _error(404, "unknown platform")
    try:
        connector = get_connector(platform)
    except ConnectorError:
        return _error(404, "unknown platform")
    if not connector.capabilities.webhooks:
        # Reddit, Mastodon and Bluesky are polled; nothing is delivered here.
        return _error(404, "this platform sends no webhooks")
    params = {key: str(value) for key, value in request.GET.items()}
    status, answer = connector.webhook_challenge(params, app_secrets(platform))
    content_type = "application/json" if answer.startswith("{") else "text/plain"
    return HttpResponse(answer, status=status, content_type=content_type)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and
# one Delivery is made per delivery on the event loop (1.18 against 0.25 us), one
# Stored per row on the committer thread (0.76 against 0.28 us). Neither is
# changed after it is made.
@dataclass(slots=True)
class Delivery:
    """A verified delivery, ready to be stored: the row it becomes."""

    platform: str
    key: str
    body: bytes
    digest: str
    malformed: str
    received_at: datetime


@dataclass(slots=True)
class Stored:
    """The answer to one stored (or refused) delivery, and the event to queue."""

    status: int
    answer: dict[str, str]
    queue: int | None = None


REFUSED = Stored(503, {"error": STORE_FAILED})
# The answers of a stored delivery and of a replay: one dict each, shared by every
# Stored and never changed, so the fast path sends their bytes encoded once
# (social/webhook_asgi.py).
ACCEPTED: dict[str, str] = {"status": "accepted"}
DUPLICATE: dict[str, str] = {"status": "duplicate"}


def check_delivery(
    platform: str, body: bytes, headers: dict[str, str]
) -> Delivery | tuple[int, dict[str, str]]:
    """Verify one POSTed delivery: the row to store, or (status, answer) to refuse.

    Pure (no database): the ASGI fast path runs it on the event loop. `headers`
    have lower-case names. 404 for a platform without webhooks here, 413 over
    WEBHOOK_MAX_BYTES, 401 for a missing or wrong signature. A signed but malformed
    body is a Delivery too: it is stored as malformed and answered 400.
    """
    limits = receiving()
    if platform not in limits.platforms:
        return 404, {"error": "unknown platform"}
    try:
        connector = get_connector(platform)
    except ConnectorError:
        return 404, {"error": "unknown platform"}
    if not connector.capabilities.webhooks:
        return 404, {"error": "this platform sends no webhooks"}
    if len(body) > limits.max_bytes:
        return 413, {"error": f"body over {limits.max_bytes} bytes"}
    if not connector.verify_webhook(body, headers, app_secrets(platform)):
        return 401, {"error": "missing or invalid signature"}
    return _delivery(platform, connector, body, headers, limits.aware)


@dataclass(frozen=True, slots=True)
class Receiving:
    """The settings every delivery is checked with, read once (a setting read costs
    about half a microsecond through Django's lazy settings, and the fast path
    checks each delivery on the event loop): read again when one of them changes
    (override_settings, the tests' settings fixture)."""

    platforms: frozenset[str]  # SOCIAL_PLATFORMS
    max_bytes: int  # WEBHOOK_MAX_BYTES
    aware: bool  # USE_TZ: received_at as timezone.now() gives it


@cache
def receiving() -> Receiving:
    return Receiving(
        frozenset(settings.SOCIAL_PLATFORMS),
        settings.WEBHOOK_MAX_BYTES,
        settings.USE_TZ,
    )


@receiver(setting_changed)
def _read_settings_again(*, setting: str, **_: Any) -> None:
    if setting in {"SOCIAL_PLATFORMS", "WEBHOOK_MAX_BYTES", "USE_TZ"}:
        receiving.cache_clear()


def _delivery(
    platform: str,
    connector: Connector,
    body: bytes,
    headers: dict[str, str],
    aware: bool,
) -> Delivery:
    signature = headers.get(connector.webhook_signature_header.lower(), "")
    digest = hashlib.sha256(signature.encode()).hexdigest()
    try:
        # Read once (ValueError unless JSON, as `load_json` decides: orjson first);
        # the connector takes its event id from what was read.
        payload = load_json(body)
        key = _storable_key(connector.webhook_event_id(body, payload))
        malformed = ""
    except (ValueError, KeyError, TypeError) as exc:
        key = "malformed-" + hashlib.sha256(body).hexdigest()
        malformed = _storable_text(f"not a valid {platform} delivery: {exc}")
    received_at = datetime.now(UTC if aware else None)  # as timezone.now() gives it
    return Delivery(platform, key, body, digest, malformed, received_at)


def _storable_key(key: str) -> str:
    """`key` as a database text value: a key with a NUL or a lone surrogate (which
    PostgreSQL or the UTF-8 codec refuse) stands for itself by its hash."""
    if "\x00" in key or not _encodable(key):
        raw = key.encode("utf-8", "surrogatepass")
        return "sha256-" + hashlib.sha256(raw).hexdigest()
    return key[:KEY_LENGTH]


def _storable_text(text: str) -> str:
    if "\x00" in text or not _encodable(text):
        return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode()
    return text


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def accept_delivery(
    platform: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str]]:
    """Verify one POSTed delivery, store it raw and enqueue it: (status, answer).

    The Django view's path (the ASGI fast path groups concurrent deliveries in
    social/group_commit.py): `check_delivery`, then `store_deliveries` on the
    caller's connection, then `social.process_webhook_event` on commit. 200 when
    stored (a replay is acknowledged, not stored), 400 when stored as malformed,
    503 when it could not be stored.
    """
    checked = check_delivery(platform, body, headers)
    if not isinstance(checked, Delivery):
        return checked
    try:
        [stored] = store_deliveries([checked])
    except DatabaseError:
        logger.warning("%s delivery not stored: database unavailable", platform)
        return REFUSED.status, REFUSED.answer
    if stored.queue is not None:
        transaction.on_commit(partial(enqueue_event, stored.queue))
    return stored.status, stored.answer


def store_deliveries(
    deliveries: Sequence[Delivery], *, using: str = "default"
) -> list[Stored]:
    """Store verified deliveries with one multi-row INSERT; their answers, in order.

    One statement, so one transaction: every row is committed or none (inside an
    atomic block it runs under a savepoint and commits with the block). A delivery
    whose (platform, key) is already stored, or appears earlier in the same call,
    is a replay: acknowledged, and queued again while the stored copy is still
    unprocessed (`received` or `failed`). Raises DatabaseError when nothing could
    be stored; the caller refuses them all (503). Queues nothing itself: each
    Stored names the event to queue once the rows are committed.
    """
    first: dict[tuple[str, str], Delivery] = {}
    for delivery in deliveries:
        first.setdefault((delivery.platform, delivery.key), delivery)
    inserted = _insert_new(connections[using], list(first.values()), using=using)
    replays = _stored_before([key for key in first if key not in inserted], using=using)
    answers = []
    seen: set[tuple[str, str]] = set()
    for delivery in deliveries:
        key = (delivery.platform, delivery.key)
        if key in inserted and key not in seen:
            seen.add(key)
            answers.append(_answer_new(delivery, inserted[key]))
        elif key in inserted:  # a later copy in the same call shares the first's
            answers.append(Stored(200, DUPLICATE if first[key].malformed else ACCEPTED))
        else:
            answers.append(_answer_replay(replays.get(key)))
    return answers


def _answer_new(delivery: Delivery, event_id: int) -> Stored:
    if delivery.malformed:
        return Stored(400, {"error": delivery.malformed})
    return Stored(200, ACCEPTED, event_id)


def _answer_replay(stored: tuple[int, str] | None) -> Stored:
    """A delivery stored before: acknowledged; queued again if still unprocessed.

    A platform retries what it thinks failed (a timeout, a 5xx from a proxy): when
    the first copy is still `received` (its task was lost with a dead worker or a
    broker outage) or gave up (`failed`), the retry processes it. Processing is
    idempotent, so a copy queued twice records nothing twice. When the database
    cannot say (None), the replay is acknowledged as a duplicate.
    """
    if stored is None:
        return Stored(200, DUPLICATE)
    event_id, event_status = stored
    if event_status in PENDING:
        return Stored(200, ACCEPTED, event_id)
    return Stored(200, DUPLICATE)


def _insert_new(
    connection: BaseDatabaseWrapper, rows: Sequence[Delivery], *, using: str
) -> dict[tuple[str, str], int]:
    """Insert the rows whose key is not stored yet: the ids of the new rows.

    On PostgreSQL a plain INSERT goes first: ON CONFLICT DO NOTHING looks each key
    up in the unique index before inserting it (then inserts it there, looking it
    up again) and logs a confirmation record per row, about a sixth of
    PostgreSQL's CPU per row (group of 32: 32.8 -> 27.0 us, 8 alternations).
    Replays are rare, so when one is in the group the plain INSERT fails as a
    whole, writes nothing, and the group is inserted again skipping conflicts;
    the next CONFLICT_RUN groups of the process skip conflicts at once (a
    platform's retries come in runs). Inside an atomic block each attempt has
    its own savepoint.
    """
    global _skip_conflicts_for
    if connection.vendor != "postgresql" or _skip_conflicts_for > 0:
        _skip_conflicts_for = max(0, _skip_conflicts_for - 1)
        return _insert_atomically(connection, rows, using=using, conflicts=True)
    try:
        return _insert_atomically(connection, rows, using=using, conflicts=False)
    except IntegrityError as exc:
        if not _stored_key_met(exc):
            raise
    _skip_conflicts_for = CONFLICT_RUN
    return _insert_atomically(connection, rows, using=using, conflicts=True)


def _stored_key_met(error: IntegrityError) -> bool:
    """Whether `error` is a key already stored (the unique constraint on platform
    and event key), not another constraint."""
    cause = error.__cause__
    return (
        isinstance(cause, psycopg.errors.UniqueViolation)
        and cause.diag.constraint_name == UNIQUE_CONSTRAINT
    )


# Groups of this process still to insert with ON CONFLICT DO NOTHING straight
# away, after one met a stored key (a heuristic: a race on it costs nothing).
_skip_conflicts_for = 0


def _insert_atomically(
    connection: BaseDatabaseWrapper,
    rows: Sequence[Delivery],
    *,
    using: str,
    conflicts: bool,
) -> dict[tuple[str, str], int]:
    if connection.in_atomic_block:
        with transaction.atomic(using=using):
            return _insert(connection, rows, conflicts=conflicts)
    return _insert(connection, rows, conflicts=conflicts)


def _insert(
    connection: BaseDatabaseWrapper,
    rows: Sequence[Delivery],
    *,
    conflicts: bool = True,
) -> dict[tuple[str, str], int]:
    """INSERT ... [ON CONFLICT DO NOTHING] RETURNING: the ids of the new rows
    (without `conflicts`, a stored key fails the whole statement)."""
    received = WebhookEvent.Status.RECEIVED.value
    malformed = WebhookEvent.Status.MALFORMED.value
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for row in rows:
        params += (
            row.platform,
            row.key,
            row.body,
            row.digest,
            malformed if row.malformed else received,
            row.malformed,
            adapt(row.received_at),
        )
    head, conflict, returning = _insert_statement(connection.ops.quote_name)
    raw = connection.vendor == "postgresql" and not connection.queries_logged
    tail = f"{conflict} {returning}" if conflicts else returning
    sql = f"{head} {_values(len(rows), numbered=raw)} {tail}"
    with _values_apart_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return {(platform, key): pk for pk, platform, key in cursor.fetchall()}


@lru_cache(maxsize=64)
def _values(rows: int, *, numbered: bool) -> str:
    """The VALUES rows of an INSERT of `rows` deliveries (7 parameters a row):
    %s placeholders, or PostgreSQL's own $1, $2, ... for `_values_apart_cursor`."""
    if not numbered:
        return ", ".join(["(%s, %s, %s, %s, %s, %s, 0, 0, %s)"] * rows)
    return ", ".join(
        "(${}, ${}, ${}, ${}, ${}, ${}, 0, 0, ${})".format(*range(at, at + 7))
        for at in range(1, 7 * rows, 7)
    )


def _values_apart_cursor(connection: BaseDatabaseWrapper) -> CursorWrapper:
    """A Django cursor that, on PostgreSQL, sends the values apart from the
    statement (psycopg's server-side binding) whatever the connection's default.
    Client-side binding quotes each of a group's values into the SQL in Python (a
    body as a hex literal twice its size): 50 rows cost about 550 us of the
    committer's CPU, against about 200 us sent apart (min, alternating, load 5).
    On PostgreSQL its statements take $1, $2, ... placeholders (psycopg's
    RawCursor): psycopg converts %s placeholders with a regular expression, and
    caches the result only for statements of at most 50 parameters, so a group of
    more than 7 deliveries had its thousands of placeholders split again at every
    commit (about an eighth of the committer's CPU under a burst).
    No statement is prepared unless the connection's prepare_threshold says so
    (None behind pgbouncer), so it suits the poolers the Django cursor suits.
    Django's wrapper stays: its error classes and execute wrappers. While queries
    are logged (DEBUG, CaptureQueriesContext) it is the connection's own cursor,
    with %s placeholders: Django writes each logged statement out with them, and a
    $1 statement made the logging raise after the INSERT had run."""
    if connection.vendor != "postgresql" or connection.queries_logged:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor: Any = psycopg.RawCursor(connection.connection)
    return connection.make_cursor(cursor)


@cache
def _insert_statement(quote: Callable[[str], str]) -> tuple[str, str, str]:
    """The INSERT around its VALUES (head, conflict clause, RETURNING):
    identifiers from the model's meta (every value is a parameter)."""
    meta = WebhookEvent._meta
    column = {field.name: quote(str(field.column)) for field in meta.concrete_fields}
    columns = ", ".join(column[name] for name in COLUMNS)
    unique = ", ".join(column[name] for name in UNIQUE)
    returning = ", ".join(column[name] for name in RETURNED)
    head = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES"
    return head, f"ON CONFLICT ({unique}) DO NOTHING", f"RETURNING {returning}"


def _stored_before(
    keys: Sequence[tuple[str, str]], *, using: str
) -> dict[tuple[str, str], tuple[int, str]]:
    """(id, status) of the stored events with these keys; empty when the database
    cannot say (the replays are then acknowledged as duplicates, as stored)."""
    by_platform: dict[str, list[str]] = {}
    for platform, key in keys:
        by_platform.setdefault(platform, []).append(key)
    found: dict[tuple[str, str], tuple[int, str]] = {}
    try:
        for platform, platform_keys in by_platform.items():
            rows = WebhookEvent.objects.using(using).filter(
                platform=platform, event_key__in=platform_keys
            )
            for pk, key, status in rows.values_list("pk", "event_key", "status"):
                found[platform, key] = (pk, status)
    except DatabaseError:
        return {}
    return found


def enqueue_event(event_id: int) -> bool:
    """Queue `social.process_webhook_event` for a stored event; False (logged) when
    the broker refused it: the event stays `received` and the sweep
    (`social.sweep_webhook_events`) queues it later. Never raises."""
    from social.tasks import process_webhook_event

    try:
        process_webhook_event.delay(event_id)
    except Exception as exc:  # any broker failure: the stored event is safe
        logger.warning(
            "webhook event %s stored but not queued (%s); the sweep will queue it",
            event_id,
            exc,
        )
        return False
    return True


def enqueue_events(event_ids: Iterable[int]) -> int:
    """Queue `social.process_webhook_event` for the stored events, as one task
    message for all of them (social/publishing.py); returns how many events were
    handed to the broker. Never raises: what the broker refused stays `received`
    and the sweep queues it, as with `enqueue_event` (which this is, one event at
    a time, when tasks run eagerly)."""
    from helpdesk.celery import app
    from social.publishing import publish_events

    ids = list(event_ids)
    if not ids or app.conf.task_always_eager:
        return sum(enqueue_event(event_id) for event_id in ids)
    try:
        publish_events(app, ids)
    except Exception as exc:  # any broker failure: the stored events are safe
        logger.warning(
            "%s webhook events stored but not queued (%r); the sweep will queue them",
            len(ids),
            exc,
        )
        return 0
    return len(ids)
