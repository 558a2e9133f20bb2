"""Plans that do not depend on statistics for the breach sweep, the digest, the
engagement read and a user's deletion.

- helpdesk_conv_unbreached_ix (tenant_id, sla_due_at, id) WHERE sla_due_at IS NOT
  NULL AND sla_breached_at IS NULL. The breach sweep reads the running clocks due
  by now and not marked breached yet, oldest first, a batch at a time. Every
  other due-time index also holds the breached clocks still waiting for an
  answer (a breach is marked once; the clock runs until the reply or the
  resolution clears it), so on tables nobody has analyzed, with its values, the
  sweep read every due clock of the tenant and sorted them (2,903 rows of 3,000
  for 97 due). This index holds only the candidates in their order: the sweep
  reads the due ones and stops.
- helpdesk_conv_breached_ix (tenant_id, brand_id, sla_due_at, id) WHERE
  sla_breached_at IS NOT NULL: the daily digest's open breaches of a brand, oldest
  due first; it read every conversation of the brand through the brand's key.
  The two indexes split the clocked rows: a create or a reply that starts a clock
  inserts into one of them, a breach moves a row from the first to the second.
- helpdesk_conv_engagement_ix becomes partial (engagement_next_at IS NOT NULL)
  and helpdesk_conv_unread_ix (tenant_id, created_at, id) WHERE
  engagement_next_at IS NULL AND social_account_id IS NOT NULL takes the
  conversations never read, by age. The engagement read (social.engagement) reads
  conversations younger than spreading.TRACK_FOR whose next read is due or that
  were never read; `next IS NULL OR next <= at` could use no index (every
  conversation of the account's tenant was read: 3,000 of 3,000), and both sets
  grew forever (a DM or a resolved conversation is never read, a read one keeps
  its last next read). It now reads two windows: next reads due within TRACK_FOR
  (a tracked conversation's next read is after it began) and unread
  conversations created within TRACK_FOR. Each row is in exactly one of the two
  indexes, as it was in the one before: no more insertions per write.
- helpdesk_conv_no_reply_by_ix (no_reply_by_id) WHERE no_reply_by_id IS NOT
  NULL. Deleting a user sets the conversations' no-reply marks to NULL and
  PostgreSQL checks the key, both by user alone, across tenants (not
  tenant-first: neither lookup names one): each read the whole table. Marks are
  rare, so the index is small and off the write path of replies and creates.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0023_conversation_snoozed_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(
                    ("sla_due_at__isnull", False), ("sla_breached_at__isnull", True)
                ),
                fields=["tenant", "sla_due_at", "id"],
                name="helpdesk_conv_unbreached_ix",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("sla_breached_at__isnull", False)),
                fields=["tenant", "brand", "sla_due_at", "id"],
                name="helpdesk_conv_breached_ix",
            ),
        ),
        migrations.RemoveIndex(
            model_name="conversation",
            name="helpdesk_conv_engagement_ix",
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("engagement_next_at__isnull", False)),
                fields=["tenant", "engagement_next_at", "id"],
                name="helpdesk_conv_engagement_ix",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(
                    ("engagement_next_at__isnull", True),
                    ("social_account__isnull", False),
                ),
                fields=["tenant", "created_at", "id"],
                name="helpdesk_conv_unread_ix",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("no_reply_by__isnull", False)),
                fields=["no_reply_by"],
                name="helpdesk_conv_no_reply_by_ix",
            ),
        ),
    ]
