"""bulkrows.any_of on SQLite (the demo's database), which has no arrays.

Run by tests/test_sqlite_demo.py in a subprocess: `python -m tests.sqlite_any_of`
with DATABASE_URL set to a sqlite:/// file. Migrates, makes three users and prints
one JSON line: the ids any_of finds, of an integer and of a text field, against
the ids made.
"""

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.core.management import call_command

    from helpdesk.services.bulkrows import any_of
    from tenants.models import User

    call_command("migrate", verbosity=0)
    users = [
        User.objects.create_user(email=f"any{n}@example.com", password=None)
        for n in range(3)
    ]
    by_id = User.objects.filter(any_of(User, "id", [users[0].pk, users[2].pk]))
    by_name = User.objects.filter(any_of(User, "first_name", ["", "nobody"]))
    outcome = {
        "made": [user.pk for user in users],
        "by_id": sorted(by_id.values_list("pk", flat=True)),
        "by_text": sorted(by_name.values_list("pk", flat=True)),
        "none": list(User.objects.filter(any_of(User, "id", []))),
    }
    sys.stdout.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
