"""The inbox filtered by brand or by assignee reads its candidates by due time.

The inbox page reads a bounded range (helpdesk.queue): the first and the n-th
due time among the page's rows, then the rows due between the first and the
n-th plus the widest window, each a range of helpdesk_conv_due_ix, (tenant_id,
status, sla_due_at, id). A brand or an assignee filter is not in that index.
A backend prepares the page's statement once it has run it twice and keeps the
generic plan, made without the values, from the sixth run on. There a brand or
an agent looks like a row or two of the tenant, so the brand's foreign-key index
(tenant_id, brand_id) and the assignee index (tenant_id, assignee_id, status)
looked cheapest for the bounds and the range: they read every conversation of
the brand (all 100,000 of the bench tenant's, which has one brand: 225 ms a
page) or every open one of the agent (10,000, sorted by due time for each
bound). Tables nobody has analyzed gave the same plans with the values known.

Each filter now has the due index's order after its own key:

- helpdesk_conv_brand_due_ix (tenant_id, brand_id, status, sla_due_at, id),
  partial on the due time as helpdesk_conv_due_ix. The brand's foreign-key index
  stays for the key's checks (migration 0017).
- helpdesk_conv_assignee_ix gains (sla_due_at, id): (tenant_id, assignee_id,
  status, sla_due_at, id), still partial on the assignee, so an agent's open
  load reads its prefix as before and the inbox filtered by assignee a range of
  it. A second assignee index beside it lost the tie to the narrower one.

The bounds and the range bind every column up to the due time and read only the
page's candidates. Both indexes are tenant-first (DESIGN §3), end with the id
and are partial, so a lookup by key (tenant_id, id) cannot use them (migration
0017). tests/helpdesk/test_read_plans.py explains the filtered pages, generic
and with their values, on fresh tables and fails on a scan that reads more
than the candidates.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0020_tenant_keys_served_by_their_lookup_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("sla_due_at__isnull", False)),
                fields=["tenant", "brand", "status", "sla_due_at", "id"],
                name="helpdesk_conv_brand_due_ix",
            ),
        ),
        migrations.RemoveIndex(
            model_name="conversation",
            name="helpdesk_conv_assignee_ix",
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("assignee__isnull", False)),
                fields=["tenant", "assignee", "status", "sla_due_at", "id"],
                name="helpdesk_conv_assignee_ix",
            ),
        ),
    ]
