"""Two SQL functions that open a workspace for a request in one statement.

`earshot_open_api(slug, digest, used_at, stale_before)` and
`earshot_open_member(slug, user_id)` (tenants/opening.py calls them):

1. find the workspace by slug (`tenants_tenant` is global, no RLS);
2. `SET LOCAL app.tenant_id = <id>` (the integer as a literal, reference/tenancy.md
   P8 and P9): gone at COMMIT or ROLLBACK (P4), and, in a function without a `SET`
   clause, kept after the function returns until then;
3. in a following statement, now filtered by the tenant policies, read the live
   token with its membership and user (and touch `last_used_at` when it is older
   than `stale_before`), or the user's membership.

Steps 2 and 3 are separate statements inside the function: a policy's
`current_setting` evaluated in the statement that changes the setting could see
the old value. Both functions are SECURITY INVOKER (they read as the runtime role,
under RLS, and grant nothing the caller does not have) and carry no `SET` clause,
which would undo the setting when the function returns. EXECUTE stays with PUBLIC,
PostgreSQL's default for functions, which is how the runtime role calls them.
SQLite (the demo) has no functions; tenants/opening.py runs ordinary queries there.
"""

from django.db import migrations

OPEN_API = """
CREATE FUNCTION earshot_open_api(
    p_tenant_slug text,
    p_token_digest text,
    p_used_at timestamptz,
    p_stale_before timestamptz
) RETURNS TABLE (
    tenant_row tenants_tenant,
    token_row tenants_apitoken,
    membership_row tenants_membership,
    user_row tenants_user
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
DECLARE
    found_tenant tenants_tenant;
    found_token tenants_apitoken;
BEGIN
    SELECT t.* INTO found_tenant FROM tenants_tenant t WHERE t.slug = p_tenant_slug;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE 'SET LOCAL app.tenant_id = ' || found_tenant.id;
    SELECT k.* INTO found_token FROM tenants_apitoken k
     WHERE k.tenant_id = found_tenant.id
       AND k.digest = p_token_digest
       AND k.revoked_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF found_token.last_used_at IS NULL
       OR found_token.last_used_at < p_stale_before THEN
        UPDATE tenants_apitoken SET last_used_at = p_used_at
         WHERE tenant_id = found_tenant.id AND id = found_token.id;
        found_token.last_used_at := p_used_at;
    END IF;
    RETURN QUERY
        SELECT found_tenant, found_token, m, u
          FROM tenants_membership m
          JOIN tenants_user u ON u.id = m.user_id
         WHERE m.tenant_id = found_tenant.id AND m.id = found_token.membership_id;
END;
$$
"""

OPEN_MEMBER = """
CREATE FUNCTION earshot_open_member(
    p_tenant_slug text,
    p_user_id bigint
) RETURNS TABLE (
    tenant_row tenants_tenant,
    membership_row tenants_membership
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
DECLARE
    found_tenant tenants_tenant;
BEGIN
    SELECT t.* INTO found_tenant FROM tenants_tenant t WHERE t.slug = p_tenant_slug;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE 'SET LOCAL app.tenant_id = ' || found_tenant.id;
    RETURN QUERY
        SELECT found_tenant, m
          FROM tenants_membership m
         WHERE m.tenant_id = found_tenant.id AND m.user_id = p_user_id;
END;
$$
"""

DROP = [
    "DROP FUNCTION IF EXISTS earshot_open_api(text, text, timestamptz, timestamptz)",
    "DROP FUNCTION IF EXISTS earshot_open_member(text, bigint)",
]


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(OPEN_API)
    schema_editor.execute(OPEN_MEMBER)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in DROP:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_sla_policies_and_holidays"),
    ]

    operations = [
        migrations.RunPython(create_functions, drop_functions, elidable=False),
    ]
