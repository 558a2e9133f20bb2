"""The snoozed sweep reads the tenant's snoozed conversations through an index
of their own.

`wake_snoozed_conversations` (helpdesk.services.lifecycle) runs from beat for
every active tenant on long-lived worker connections, so its prepared statement
soon runs on a generic plan. On tables nobody has analyzed that plan, in the
model's default order, walked helpdesk_conv_engagement_ix over every
conversation of the tenant and discarded all but the snoozed ones (995 of 1,000
rows); unordered it did the same. `snoozed_until <= $n` implies the partial
index's `snoozed_until IS NOT NULL` whatever the value, and only snoozed
conversations hold a wake-up time (every other transition clears it), so the
index is as small as the snoozed set and a reply or create that is not a snooze
never inserts into it. The sweep now orders by (snoozed_until, id): the earliest
due wake first, in the index's order (tests/helpdesk/test_snoozed_sweep_plans.py).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0022_conversation_queue_at_indexes_dropped"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("snoozed_until__isnull", False)),
                fields=["tenant", "snoozed_until", "id"],
                name="helpdesk_conv_snoozed_ix",
            ),
        ),
    ]
