#!/usr/bin/env bash
# scripts/peer_profile.py on a fresh database, with the side-by-side's settings.
#
#   scripts/peer_profile.sh [peer_profile.py options]    # e.g. --wsgi --profile
#   scripts/peer_profile.sh --levers [--count N]          # scripts/peer_levers.py
#   scripts/peer_profile.sh --steps [--phases P] [--step module:Owner.attr ...]
#                                                         # scripts/peer_profile_steps.py
#   WRAP="py-spy record --gil -r 250 -f raw -o out.raw --" scripts/peer_profile.sh ...
#                                  # runs the Python script under WRAP (a profiler)
#
# Env: EARSHOT_DB (earshot_profile), REDIS_DB (cache and broker; 1), REDIS_HOSTPORT
# (127.0.0.1:6379), PG_HOSTPORT (PostgreSQL; 127.0.0.1:5432, e.g. a private cluster),
# PG_SUPERUSER_URL, KEEP=1 reuses the database and workspace of the last run
# (kept in /tmp/earshot_profile_workspace.json).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$HERE/.venv/bin/python
EARSHOT_DB=${EARSHOT_DB:-earshot_profile}
OWNER=${EARSHOT_OWNER:-earshot_profile_owner}; APP=${EARSHOT_APP:-earshot_profile_app}
PG_HOSTPORT=${PG_HOSTPORT:-127.0.0.1:5432}
PG_SUPERUSER_URL=${PG_SUPERUSER_URL:-postgresql://postgres@$PG_HOSTPORT/postgres}
REDIS_DB=${REDIS_DB:-1}
REDIS_HOSTPORT=${REDIS_HOSTPORT:-127.0.0.1:6379}
STATE=${STATE:-/tmp/earshot_profile_workspace.json}
export DJANGO_SETTINGS_MODULE=helpdesk.settings
export DATABASE_URL=postgresql://$APP@$PG_HOSTPORT/$EARSHOT_DB
export MIGRATOR_DATABASE_URL=postgresql://$OWNER@$PG_HOSTPORT/$EARSHOT_DB
export REDIS_URL=redis://$REDIS_HOSTPORT/$REDIS_DB
export CELERY_BROKER_URL=redis://$REDIS_HOSTPORT/$REDIS_DB
export SECRET_KEY=profile-only-secret-key-$(printf 'x%.0s' {1..40})
export EARSHOT_DEMO=0 DEBUG=0 SECURE_SSL_REDIRECT=0
export ALLOWED_HOSTS=127.0.0.1,localhost
export API_RATE_LIMIT=${API_RATE_LIMIT:-1000000/min}
export EMAIL_BACKEND=django.core.mail.backends.dummy.EmailBackend
export PYTHONPATH=$HERE
cd "$HERE"
if [ "${KEEP:-0}" != 1 ] || [ ! -s "$STATE" ]; then
  "$PY" scripts/peer_setup.py database --superuser-url "$PG_SUPERUSER_URL" \
    --database "$EARSHOT_DB" --owner "$OWNER" --app "$APP"
  "$PY" manage.py migrate --database migrator --noinput -v 0
  "$PY" scripts/peer_setup.py workspace | tail -1 > "$STATE"
else  # others may have added migrations since
  "$PY" manage.py migrate --database migrator --noinput -v 0
fi
read -r SLUG CHANNEL TOKEN < <("$PY" -c \
  'import json,sys; w=json.load(open(sys.argv[1])); print(w["slug"], w["channel"], w["token"])' \
  "$STATE")
echo "uptime: $(uptime)"
SCRIPT=scripts/peer_profile.py
if [ "${1:-}" = --levers ]; then SCRIPT=scripts/peer_levers.py; shift; fi
if [ "${1:-}" = --steps ]; then SCRIPT=scripts/peer_profile_steps.py; shift; fi
${WRAP:-} "$PY" $SCRIPT --slug "$SLUG" --channel "$CHANNEL" --token "$TOKEN" "$@"
redis-cli -h "${REDIS_HOSTPORT%:*}" -p "${REDIS_HOSTPORT#*:}" -n "$REDIS_DB" flushdb > /dev/null
echo "uptime: $(uptime)"
