"""Reading the engagement of open public conversations (R13), within each
platform's limits.

Beat runs `social.refresh_all_engagement` every 30 s; per tenant,
`refresh_engagement`:
1. picks the open or pending conversations whose customer post is public, on an
   account whose connector reads engagement (`engagement_batch` > 0), first read
   within helpdesk.services.spreading.TRACK_FOR, and due (`engagement_next_at`
   passed, or never read); at most MAX_PER_RUN, the most overdue first;
2. per account, skips it while its platform asked to be left alone (the pause
   social.sending keeps after a 429 or 5xx), then reads the posts in batches of
   the connector's `engagement_batch` (one call each), each call counted against
   the connector's `engagement_limit` for the account (a budget below the
   platform's published limit, shared by every worker through the cache); a spent
   budget leaves the rest of the account's posts for a later run;
3. records each batch in its own short transaction: the counts per post
   (social.models.PostEngagement) and the totals
   (helpdesk.services.spreading.record_engagement, which flags spreading).
A 429 or 5xx pauses the account for its Retry-After (social.sending.pause, also
what delivery and polling respect) and stops its reads; an auth or permanent
error pushes the posts' next read one interval out (no retry storm). Posts the
platform no longer shows get their next read as usual (their total stays).
Network calls run outside any transaction.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from itertools import batched

from django.utils import timezone

from helpdesk.models import Conversation, Message
from helpdesk.services import spreading
from social import health, sending
from social.connectors import get_connector
from social.connectors.base import Connector, ConnectorError, Engagement
from social.models import PostEngagement, SocialAccount, connector_ref
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.ratelimit import fixed_window_wait

logger = logging.getLogger(__name__)

MAX_PER_RUN = 2000
OPEN = (Conversation.Status.OPEN, Conversation.Status.PENDING)


def reading_platforms() -> list[str]:
    """The platforms whose connector reads engagement."""
    from django.conf import settings

    found = []
    for platform in settings.SOCIAL_PLATFORMS:
        try:
            connector = get_connector(platform)
        except ConnectorError:
            continue
        if connector.engagement_batch > 0:
            found.append(platform)
    return found


def due_posts(*, at: datetime) -> dict[int, dict[int, tuple[str, datetime]]]:
    """Per account id: conversation id → (the customer's public post id, its
    time), for the conversations whose engagement read is due at `at` (module
    docstring, step 1). Two or three queries. Call inside the tenant's context."""
    conversations = _due_conversations(at)
    accounts = dict(conversations)
    first_posts = (
        Message.objects.filter(
            conversation_id__in=list(accounts),
            direction=Message.Direction.IN,
            visibility=Message.Visibility.PUBLIC,
            external_id__isnull=False,
        )
        .exclude(external_id="")
        .order_by("conversation_id", "created_at", "pk")
        .values_list("conversation_id", "external_id", "created_at")
    )
    due: dict[int, dict[int, tuple[str, datetime]]] = defaultdict(dict)
    for conversation_id, external_id, created_at in first_posts:
        posts = due[accounts[conversation_id]]
        if conversation_id not in posts and external_id:
            posts[conversation_id] = (external_id, created_at)
    return dict(due)


def _due_conversations(at: datetime) -> list[tuple[int, int]]:
    """(conversation id, account id) of the conversations due at `at`: those
    whose next read passed, the most overdue first, then those never read, at
    most MAX_PER_RUN in all.

    Each part reads a window of an index of its own (helpdesk migration 0024):
    `next IS NULL OR next <= at` could use none and read every conversation of
    the tenant. A tracked conversation began within TRACK_FOR and its next read
    is after a read of it, so a due one's lies within TRACK_FOR before `at` too;
    the unread ones are read by age within TRACK_FOR. A conversation that is
    never read (a DM, resolved first) or stopped being read stays behind the
    windows instead of in every run's read.
    """
    since = at - spreading.TRACK_FOR
    tracked = Conversation.objects.filter(
        status__in=OPEN,
        social_account__isnull=False,
        social_account__status=SocialAccount.Status.CONNECTED,
        platform__in=reading_platforms(),
        created_at__gte=since,
    )
    found = list(
        tracked.filter(engagement_next_at__gte=since, engagement_next_at__lte=at)
        .order_by("engagement_next_at", "pk")
        .values_list("pk", "social_account_id")[:MAX_PER_RUN]
    )
    if len(found) < MAX_PER_RUN:
        found += (
            tracked.filter(engagement_next_at__isnull=True)
            .order_by("pk")
            .values_list("pk", "social_account_id")[: MAX_PER_RUN - len(found)]
        )
    return found


def refresh_engagement(tenant: Tenant, *, at: datetime | None = None) -> int:
    """Read the engagement of the tenant's due public conversations (module
    docstring); returns how many posts were read. Runs outside any transaction;
    opens the tenant's context for each step."""
    moment = at or timezone.now()
    with tenant_context(tenant):
        due = due_posts(at=moment)
        accounts = {
            account.pk: account
            for account in SocialAccount.objects.filter(pk__in=list(due))
        }
    read = 0
    for account_id, posts in due.items():
        read += _refresh_account(tenant, accounts[account_id], posts)
    return read


def _refresh_account(
    tenant: Tenant, account: SocialAccount, posts: dict[int, tuple[str, datetime]]
) -> int:
    connector = get_connector(account.platform)
    if sending.pauses([account.pk]).get(account.pk, 0.0) > 0:
        return 0
    ref = connector_ref(account)
    read = 0
    for batch in batched(
        sorted(posts.items()), connector.engagement_batch, strict=False
    ):
        if not _within_budget(connector, account):
            logger.info("engagement budget of account %s spent", account.pk)
            break
        ids = [post_id for _conversation, (post_id, _at) in batch]
        try:
            found = connector.read_engagement(ref, ids)
        except ConnectorError as error:
            _failed(tenant, account, dict(batch), error)
            break
        _record(tenant, account, dict(batch), found)
        read += len(found)
    return read


def _within_budget(connector: Connector, account: SocialAccount) -> bool:
    limit = connector.engagement_limit
    if limit is None:
        return True
    wait = fixed_window_wait(
        "engagement",
        str(account.pk),
        limit=limit.requests,
        window=limit.per_seconds,
    )
    return wait is None


def _record(
    tenant: Tenant,
    account: SocialAccount,
    batch: dict[int, tuple[str, datetime]],
    found: dict[str, Engagement],
) -> None:
    at = timezone.now()
    totals: dict[int, int] = {}
    rows: list[PostEngagement] = []
    for conversation_id, (post_id, _posted) in batch.items():
        engagement = found.get(post_id)
        if engagement is None:
            continue
        totals[conversation_id] = engagement.total
        rows.append(
            PostEngagement(
                tenant=tenant,
                account=account,
                external_id=post_id,
                reposts=engagement.reposts,
                likes=engagement.likes,
                replies=engagement.replies,
                quotes=engagement.quotes,
                read_at=at,
            )
        )
    posted = {conversation_id: time for conversation_id, (_p, time) in batch.items()}
    with tenant_context(tenant):
        if rows:
            PostEngagement.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["tenant", "account", "external_id"],
                update_fields=["reposts", "likes", "replies", "quotes", "read_at"],
            )
            spreading.record_engagement(tenant, totals, posted=posted, at=at)
        _postpone([c for c in batch if c not in totals], posted=posted, at=at)
    if account.degraded_since is None:
        return
    # A call that worked ends the account's trouble, as a delivery's would.
    sending.resume([account.pk])
    with tenant_context(tenant):
        health.mark_healthy([account.pk])


def _failed(
    tenant: Tenant,
    account: SocialAccount,
    batch: dict[int, tuple[str, datetime]],
    error: ConnectorError,
) -> None:
    logger.warning(
        "engagement read of account %s failed: %s", account.pk, error.message
    )
    if sending.platform_trouble(error) or error.retry_after is not None:
        # Everyone waits: delivery, polling and the next engagement run.
        sending.pause(account.pk, error)
    posted = {conversation_id: time for conversation_id, (_p, time) in batch.items()}
    with tenant_context(tenant):
        _postpone(list(batch), posted=posted, at=timezone.now())


def _postpone(
    conversation_ids: Sequence[int], *, posted: dict[int, datetime], at: datetime
) -> None:
    """Move the next read of conversations not read now one interval out."""
    for conversation_id in conversation_ids:
        Conversation.objects.filter(pk=conversation_id).update(
            engagement_next_at=spreading.next_read_at(posted[conversation_id], at=at)
        )
