"""Earshot's side of the peer benchmark (scripts/peer_side_by_side.sh).

  python scripts/peer_setup.py database --superuser-url URL --database D \
      --owner O --app A
      fresh database (dropped first) with the table-owner and runtime roles
      (tenants/dbroles.py); migrations then run as the owner.
  python scripts/peer_setup.py workspace
      with the production settings and DATABASE_URL = the runtime role: a bench
      user and workspace, an API channel, an admin-scope API token, and the brand
      set for a throughput run (send_hold_seconds=0, hours 00:00-24:00 every day).
      Prints one JSON line: {"slug": ..., "channel": ..., "token": ...}.

Run from the checkout under test with PYTHONPATH at its root.
"""

import argparse
import json
import sys


def fresh_database(args: argparse.Namespace) -> None:
    from tenants.dbroles import RolePlan, ensure_roles_and_database

    plan = RolePlan(
        superuser_url=args.superuser_url,
        database=args.database,
        owner=args.owner,
        app=args.app,
    )
    ensure_roles_and_database(plan, recreate=True)


def bench_workspace(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from social.api_channel import create_api_channel
    from tenants.api_tokens import create_api_token
    from tenants.brand_rules import WEEKDAYS
    from tenants.context import tenant_context
    from tenants.models import Brand, Membership, User
    from tenants.services import create_workspace, update_brand

    user = User.objects.create_user(args.email, args.password)
    membership = create_workspace(owner=user, name=args.name)
    tenant = membership.tenant
    with tenant_context(tenant):
        member = Membership.objects.select_related("user").get(pk=membership.pk)
        member.tenant = tenant
        brand = Brand.objects.get()
        update_brand(
            member,
            brand,
            changes={
                "send_hold_seconds": 0,
                "business_hours": {day: [["00:00", "24:00"]] for day in WEEKDAYS},
            },
        )
        channel = create_api_channel(member, brand=brand, name="Bench API channel")
        _, token = create_api_token(member, name="peer bench", scope="admin")
    print(json.dumps({"slug": tenant.slug, "channel": channel.pk, "token": token}))  # noqa: T201


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    database = commands.add_parser("database", help="fresh database and roles")
    database.add_argument("--superuser-url", required=True)
    database.add_argument("--database", required=True)
    database.add_argument("--owner", required=True)
    database.add_argument("--app", required=True)
    database.set_defaults(run=fresh_database)
    workspace = commands.add_parser("workspace", help="bench workspace and token")
    workspace.add_argument("--name", default="Earshot Bench")
    workspace.add_argument("--email", default="bench@earshot-bench.example")
    workspace.add_argument("--password", default="bench-pass-123-earshot")
    workspace.set_defaults(run=bench_workspace)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
