"""Before/after CPU of single hot-path steps, interleaved in one process.

  scripts/peer_profile.sh --levers     (runs this instead of peer_profile.py)

The machine is shared and its load moves by the minute, so a figure from this
morning and one from now say little about a change. Here each step runs in its
previous form ("before", the queryset built and compiled per call) and its
current form ("after"), alternating in blocks on the same rows, in the same
tenant transaction; the figure is the CPU per call (`time.process_time`), the
minimum over blocks, and the same rows must come out of both.
"""

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any


def _cpu_per_call(call: Callable[[], Any], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - start) / count


def compare(
    label: str,
    before: Callable[[], Any],
    after: Callable[[], Any],
    *,
    same: Callable[[Any], Any] = lambda rows: rows,
    count: int = 100,
    blocks: int = 7,
) -> None:
    if same(before()) != same(after()):
        raise SystemExit(f"{label}: before and after read different rows")
    best = [float("inf"), float("inf")]
    for _ in range(blocks):
        for index, call in enumerate((before, after)):
            best[index] = min(best[index], _cpu_per_call(call, count))
    print(  # noqa: T201
        f"{label:<40} before {best[0] * 1e3:6.3f} ms  after {best[1] * 1e3:6.3f} ms"
        f"  ({best[1] / best[0]:.2f}x)",
        flush=True,
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slug", required=True)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, default=100)
    args, _ = parser.parse_known_args(argv)

    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from helpdesk.access import access_conversation, access_conversation_read
    from helpdesk.api_output import validated_input
    from helpdesk.inbox_compiled import first_page
    from helpdesk.lookups import attach_columns
    from helpdesk.models import Conversation, Message
    from helpdesk.queue import with_queue_order
    from helpdesk.selectors import (
        conversation_messages,
        conversation_rows,
        inbox_conversations,
    )
    from helpdesk.services import sla
    from helpdesk.services.reply_lock import lock_conversation_for_reply
    from social.api_channel import access_api_channel
    from social.channel_api import ChannelMessageCreateApi
    from social.models import Platform, SocialAccount
    from tenants.context import tenant_context
    from tenants.models import Membership, Tenant

    tenant = Tenant.objects.get(slug=args.slug)
    with tenant_context(tenant):
        membership = Membership.objects.select_related("user", "tenant").first()
        if membership is None:
            raise SystemExit("the workspace has no member")
        conversation_id = (
            Conversation.objects.order_by("-id").values_list("id", flat=True).first()
        )

        def channel_before() -> Any:
            return (
                SocialAccount.objects.select_related("tenant", "brand")
                .filter(pk=args.channel, platform=Platform.API)
                .annotate(**sla.brand_time_annotations("social_socialaccount"))
                .first()
            )

        def channel_shape(account: Any) -> Any:
            return (
                account.pk,
                account.brand.pk,
                account.tenant.pk,
                account.preloaded_holidays,
                account.preloaded_sla_policy,
            )

        compare(
            "access_api_channel",
            channel_before,
            lambda: access_api_channel(membership, args.channel),
            same=channel_shape,
            count=args.count,
        )
        if conversation_id is not None:

            def conversation_shape(row: Any) -> Any:
                return (row.pk, row.brand.pk, row.contact.pk, row.social_account.pk)

            compare(
                "access_conversation",
                lambda: (
                    Conversation.objects.select_related(
                        "brand", "contact", "social_account"
                    )
                    .filter(pk=conversation_id)
                    .first()
                ),
                lambda: access_conversation(membership, conversation_id),
                same=conversation_shape,
                count=args.count,
            )

            compare(
                "detail's gate (conversation_rows shape)",
                lambda: (
                    conversation_rows(membership).filter(pk=conversation_id).first()
                ),
                lambda: access_conversation_read(membership, conversation_id),
                same=lambda row: (
                    row.pk,
                    row.contact.display_name,
                    row.tag_names,
                    row.brand.name,
                ),
                count=args.count,
            )

            read = access_conversation_read(membership, conversation_id)

            def messages_before() -> Any:
                messages = (
                    Message.objects.filter(conversation_id=conversation_id)
                    .select_related("author_agent")
                    .order_by("created_at", "id")
                )
                return list(
                    attach_columns(
                        messages,
                        "author_identity",
                        ["contact_id", "display_name", "handle"],
                    )
                )

            compare(
                "detail's messages",
                messages_before,
                lambda: conversation_messages(read),
                same=lambda rows: [
                    (row.pk, row.text, row.author_identity.display_name) for row in rows
                ],
                count=args.count,
            )

            def lock_before() -> Any:
                locked = (
                    Conversation.objects.select_for_update(of=("self",))
                    .select_related("brand", "social_account")
                    .annotate(
                        **sla.brand_time_annotations(
                            "helpdesk_conversation", policy=False
                        )
                    )
                    .get(pk=conversation_id)
                )
                sla.preload_annotated(locked, locked.brand)
                return locked

            def lock_shape(row: Any) -> Any:
                return (
                    row.pk,
                    row.brand.pk,
                    row.social_account.pk,
                    getattr(row.brand, sla.PRELOADED_HOLIDAYS),
                )

            compare(
                "post_reply's lock",
                lock_before,
                lambda: lock_conversation_for_reply(conversation_id),
                same=lock_shape,
                count=args.count,
            )
        payload = {
            "external_id": "levers-1",
            "text": "My order has not arrived yet. Could you check where it is?",
            "author": {"id": "levers-cust", "handle": "@cust", "name": "Customer"},
        }
        push_input = ChannelMessageCreateApi.ChannelMessageInput
        author_input = ChannelMessageCreateApi.ChannelAuthorInput

        def push_before() -> Any:
            author = author_input(data=payload["author"])
            author.is_valid(raise_exception=True)
            serializer = push_input(data=payload)
            serializer.is_valid(raise_exception=True)
            return serializer.validated_data

        compare(
            "create's input validation",
            push_before,
            lambda: validated_input(push_input, payload),
            same=dict,
            count=args.count,
        )
        now = timezone.now()

        def page_before() -> Any:
            ordered = with_queue_order(inbox_conversations(membership), now)
            return list(ordered[:26])

        compare(
            "inbox first page (25 rows)",
            page_before,
            lambda: first_page(membership, filters={}, size=25, now=now),
            same=lambda rows: [
                (row.pk, row.contact.display_name, row.tag_names, row.queue_key)
                for row in rows
            ],
            count=max(args.count // 5, 10),
        )
        transaction.set_rollback(True)


if __name__ == "__main__":
    main(sys.argv[1:])
