"""`earshot_open_api` touches `last_used_at` without waiting on another request.

Migration 0005's function updates the token's `last_used_at` once a minute. Every
request that read the stamp stale before the first toucher committed then ran
the same UPDATE and waited on that request's row lock until its COMMIT (the whole
request): under concurrent calls with one token, a pile-up once a minute.

Here the touch locks the row with `FOR NO KEY UPDATE SKIP LOCKED` in a subselect
(the lock an UPDATE of a non-key column takes, so foreign-key checks that take
KEY SHARE on the token are not blocked by it): a request that finds the row
locked by another toucher skips the touch and goes on. The staleness is checked
again in the locking subselect and in the UPDATE itself, so a request that read
the stamp stale just before another toucher committed writes nothing (in READ
COMMITTED both re-read the newest row version). The token row the function
returns keeps the stamp it read when the touch was skipped.

Everything else is 0005's body unchanged: the workspace by slug, `SET LOCAL
app.tenant_id` as its own statement (then kept until the transaction ends: no
`SET` clause), SECURITY INVOKER, the token, membership and user read under RLS.
Reversing restores 0005's body (CREATE OR REPLACE: same signature and result).
"""

import importlib

from django.db import migrations

OPEN_API = """
CREATE OR REPLACE FUNCTION earshot_open_api(
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
    touched timestamptz;
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
        UPDATE tenants_apitoken k SET last_used_at = p_used_at
         WHERE k.tenant_id = found_tenant.id
           AND k.id = (
               SELECT s.id FROM tenants_apitoken s
                WHERE s.tenant_id = found_tenant.id
                  AND s.id = found_token.id
                  AND (s.last_used_at IS NULL OR s.last_used_at < p_stale_before)
                  FOR NO KEY UPDATE SKIP LOCKED
           )
           AND (k.last_used_at IS NULL OR k.last_used_at < p_stale_before)
        RETURNING k.last_used_at INTO touched;
        IF FOUND THEN
            found_token.last_used_at := touched;
        END IF;
    END IF;
    RETURN QUERY
        SELECT found_tenant, found_token, m, u
          FROM tenants_membership m
          JOIN tenants_user u ON u.id = m.user_id
         WHERE m.tenant_id = found_tenant.id AND m.id = found_token.membership_id;
END;
$$
"""


def _previous_body() -> str:
    """0005's `earshot_open_api`, as a CREATE OR REPLACE."""
    previous = importlib.import_module(
        "tenants.migrations.0005_request_opening_functions"
    )
    body: str = previous.OPEN_API
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def skip_held_touch(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(OPEN_API)


def wait_for_held_touch(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(_previous_body())


class Migration(migrations.Migration):
    dependencies = [("tenants", "0009_brand_deflection")]

    operations = [
        migrations.RunPython(skip_held_touch, wait_for_held_touch, elidable=False),
    ]
