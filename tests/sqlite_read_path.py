"""The read path on SQLite (the demo's database): tag names as a JSON array,
contact names by subquery, the page's ids with IN, `?include=` on the detail.

Run by tests/helpdesk/test_read_path_sqlite.py in a subprocess (the suite's own
settings are PostgreSQL): `python -m tests.sqlite_read_path` with DATABASE_URL set
to a sqlite:/// file. Migrates, seeds a week of demo history, tags two
conversations, then prints one JSON line: what the selector and the API return.
"""

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from helpdesk.demo_history import seed_history
    from helpdesk.selectors import inbox_conversations
    from helpdesk.services.conversations import update_conversation
    from social.sandbox.setup import connect_demo_account
    from tenants.context import tenant_context
    from tenants.models import Brand, Membership, User
    from tenants.services import create_workspace

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("owner@sqlite.example", "pw")
    tenant = create_workspace(owner=owner, name="Lite Air").tenant
    with tenant_context(tenant):
        membership = Membership.objects.select_related("user").get(user=owner)
        membership.tenant = tenant
        account = connect_demo_account(membership, Brand.objects.get(), "liteair")
        seed_history([account], [membership], days=7, per_day=6, seed=11)
        rows = list(inbox_conversations(membership, status=None)[:5])
        update_conversation(rows[0], membership=membership, tags=["vip", "bags"])
        update_conversation(rows[1], membership=membership, tags=["bags"])
        page = list(inbox_conversations(membership, status=None)[:5])
        selector = {
            "ids": [row.pk for row in page],
            "tags": [row.tag_names for row in page],
            "contacts": [row.contact.display_name for row in page],
            "contact_ids": [row.contact.pk == row.contact_id for row in page],
        }
    client = APIClient()
    client.force_login(owner)
    base = f"/api/v1/t/{tenant.slug}/conversations/"
    listed = client.get(f"{base}?status=all&page_size=5").json()
    detail = client.get(f"{base}{page[0].pk}/?include=messages,notes").json()
    thread = client.get(f"{base}{page[0].pk}/messages/").json()
    outcome = {
        "selector": selector,
        "api_ids": [row["id"] for row in listed["results"]],
        "api_tags": [row["tags"] for row in listed["results"]],
        "api_contacts": [row["contact"]["name"] for row in listed["results"]],
        "detail_tags": detail["tags"],
        "detail_messages_equal_thread": detail["messages"] == thread,
        "detail_messages": len(detail["messages"]),
        "detail_notes": detail["notes"],
    }
    sys.stdout.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
