"""Two conversation indexes nothing reads any more are dropped.

- helpdesk_conv_queue_ix (tenant_id, status, queue_at, id) and
- helpdesk_conv_all_queue_ix (tenant_id, queue_at, last_activity_at DESC, id)

served the inbox when it was ordered by queue_at (migrations 0002 and 0005).
The R10 queue order (helpdesk.queue) sorts by a key no index holds and reads its
candidates as due-time ranges (helpdesk_conv_due_ix, helpdesk_conv_all_due_ix,
helpdesk_conv_brand_due_ix, helpdesk_conv_assignee_ix) and its answered rows as
recency ranges (helpdesk_conv_recent_ix, helpdesk_conv_all_recent_ix). No query
filters or orders by queue_at but the model's default ordering, which a few
lookups by key or by status still carry; helpdesk_conv_recent_ix serves a lookup
by status (tenant_id, status, ...). Neither index is a key's index: every
composite key has its own (tests/tenants/test_tenant_key_indexes.py).

That default order was the only thing they did: a lookup by key that keeps it
(`filter(pk=...).first()`) got a generic plan on tables nobody has analyzed
that walked helpdesk_conv_all_queue_ix in order and filtered every row of the
tenant for the one id; it now reads the key
(tests/helpdesk/test_conversation_default_order_plans.py).

A reply's UPDATE changes last_activity_at, sla_due_at and queue_at, so it is
never a heap-only update and inserts into every index its new row belongs to;
a create inserts into them too. Both indexes held every row (not partial): two
index insertions fewer per reply and per create (14 -> 12 indexes on the
table). The reply's UPDATE of a conversation alone: 12.2 -> 10.2 WAL records,
1,375 -> 1,117 bytes, backend CPU 155 -> 141 us; the create's INSERT: 13.2 ->
11.2 records, 1,543 -> 1,284 bytes, 174 -> 160 us (medians of 6 rounds of 1,000
each way, alternating, 20,000 conversations in the tenant).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0021_inbox_filter_due_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="conversation",
            name="helpdesk_conv_queue_ix",
        ),
        migrations.RemoveIndex(
            model_name="conversation",
            name="helpdesk_conv_all_queue_ix",
        ),
    ]
