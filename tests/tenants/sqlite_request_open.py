"""Requests open their workspace on SQLite (the demo) as they do on PostgreSQL.

Run by tests/tenants/test_request_open.py in a subprocess (the suite's own settings
are PostgreSQL): `python -m tests.tenants.sqlite_request_open` with DATABASE_URL
set to a sqlite:/// file. Migrates, makes two workspaces, calls the ping endpoint
and a page as members and outsiders, and prints one JSON line with the answers.
"""

import json
from datetime import timedelta
from typing import Any

import django


def main() -> None:
    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils.timezone import now

    from tenants.api_tokens import create_api_token, revoke_api_token
    from tenants.context import tenant_context
    from tenants.models import ApiToken, Membership, Tenant, User
    from tenants.services import create_workspace

    setup_test_environment()
    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("owner@lite.example", "pw")
    outsider = User.objects.create_user("out@other.example", "pw")
    tenant = create_workspace(owner=owner, name="Lite Air").tenant
    other = create_workspace(owner=outsider, name="Other Air").tenant

    def token_of(workspace: Tenant, user: User) -> tuple[ApiToken, str]:
        with tenant_context(workspace):
            membership = Membership.objects.get(user=user)
            membership.tenant = workspace
            membership.user = user
            return create_api_token(membership, name="t", scope="read")

    token, raw = token_of(tenant, owner)
    _, foreign = token_of(other, outsider)
    revoked, revoked_raw = token_of(tenant, owner)
    with tenant_context(tenant):
        membership = Membership.objects.get(user=owner)
        membership.tenant, membership.user = tenant, owner
        revoke_api_token(membership, token=revoked)

    ping = f"/api/v1/t/{tenant.slug}/ping/"

    def api(client: Client, **headers: str) -> list[Any]:
        response = client.get(ping, headers=headers)
        body = response.json()
        return [
            response.status_code,
            body if response.status_code == 200 else body["code"],
        ]

    def last_used() -> Any:
        with tenant_context(tenant):
            return ApiToken.objects.get(pk=token.pk).last_used_at

    member, stranger = Client(), Client()
    member.force_login(owner)
    stranger.force_login(outsider)
    outcome: dict[str, Any] = {
        "token ping": api(Client(), Authorization=f"Bearer {raw}"),
        "session ping": api(member),
        "page": member.get(f"/t/{tenant.slug}/").status_code,
        "foreign token": api(Client(), Authorization=f"Bearer {foreign}"),
        "revoked token": api(Client(), Authorization=f"Bearer {revoked_raw}"),
        "outsider session": api(stranger),
        "outsider page": stranger.get(f"/t/{tenant.slug}/").status_code,
        "no credentials": api(Client()),
    }
    stamped = last_used()
    api(Client(), Authorization=f"Bearer {raw}")
    outcome["last used stamped"] = stamped is not None and now() - stamped < timedelta(
        seconds=30
    )
    outcome["last used kept within a minute"] = last_used() == stamped
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    outcome["suspended"] = api(Client(), Authorization=f"Bearer {raw}")
    print(json.dumps(outcome))  # noqa: T201 - the parent test reads this line


if __name__ == "__main__":
    main()
