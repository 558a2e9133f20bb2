#!/usr/bin/env bash
# Earshot's REST API beside django-helpdesk's, in one bench.py run (issue 12, item 1).
#
#   scripts/peer_side_by_side.sh                  # T=2000 F=2 N=8 R=100
#   T=5000 scripts/peer_side_by_side.sh           # the read comparison at T=5000
#   EARSHOT_ROOT=/work/before scripts/peer_side_by_side.sh   # another checkout
#
# 1. the peer (../shared/peers/django-helpdesk), copied to $PEER_WORK and built by its
#    own setup.sh on a fresh PostgreSQL database, served by its serve.sh (gunicorn,
#    2 sync workers, DEBUG off) on 127.0.0.1:$PEER_PORT;
# 2. Earshot in production mode on a fresh database: migrated as the table owner,
#    served as the restricted runtime role by `python -m helpdesk.web_server
#    --workers 2` (WEB_SERVER=uvicorn: `uvicorn --workers 2`) on
#    127.0.0.1:$EARSHOT_PORT, DEBUG off, one Celery worker on Redis; a bench workspace
#    with an API channel and an admin-scope token, its brand with send_hold_seconds=0
#    and hours 00:00-24:00 every day, API_RATE_LIMIT raised;
# 3. bench.py once, phases interleaved: django-helpdesk, Earshot
#    (tests/perf/peer_adapter.py:EarshotPeer) and the baseline `GET ping/` in the same
#    Earshot processes (EarshotPing; left out when ping answers 404);
# 4. summary.json, table.md and the logs into tests/perf/peer_runs/<UTC time>/.
# Everything it started is stopped on exit, failure included. Loopback only.
#
# Env: T F N R (workload), SEED, EARSHOT_ROOT (checkout under test, default this one),
# EARSHOT_PYTHON (default $EARSHOT_ROOT/.venv/bin/python, else this checkout's),
# PEERS_DIR (/work/shared/peers), PEER_WORK (/tmp/peer), PEER_PYTHON (python3.11),
# PEER_PORT (8000), EARSHOT_PORT (8801), PEER_DB, EARSHOT_DB, EARSHOT_OWNER,
# EARSHOT_APP, REDIS_DB (5), BROKER_DB (REDIS_DB+1; may equal REDIS_DB),
# CELERY_CONCURRENCY (1), WEB_SERVER (web_server or uvicorn), PG_SUPERUSER_URL, OUT.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EARSHOT_ROOT=$(cd "${EARSHOT_ROOT:-$HERE}" && pwd)
if [ -z "${EARSHOT_PYTHON:-}" ]; then
  EARSHOT_PYTHON=$EARSHOT_ROOT/.venv/bin/python
  [ -x "$EARSHOT_PYTHON" ] || EARSHOT_PYTHON=$HERE/.venv/bin/python
fi
T=${T:-2000}; F=${F:-2}; N=${N:-8}; R=${R:-100}; SEED=${SEED:-1}
PEERS_DIR=${PEERS_DIR:-/work/shared/peers}
PEER_WORK=${PEER_WORK:-/tmp/peer}
PEER_PYTHON=${PEER_PYTHON:-$(command -v python3.11 || command -v python3)}
PEER_PORT=${PEER_PORT:-8000}; EARSHOT_PORT=${EARSHOT_PORT:-8801}
PEER_DB=${PEER_DB:-helpdesk_peer_sbs}
EARSHOT_DB=${EARSHOT_DB:-earshot_peer_bench}
EARSHOT_OWNER=${EARSHOT_OWNER:-earshot_peer_owner}
EARSHOT_APP=${EARSHOT_APP:-earshot_peer_app}
PG_SUPERUSER_URL=${PG_SUPERUSER_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
REDIS_DB=${REDIS_DB:-5}; BROKER_DB=${BROKER_DB:-$((REDIS_DB + 1))}
CELERY_CONCURRENCY=${CELERY_CONCURRENCY:-1}
# helpdesk.web_server (the Procfile's; connections dealt evenly to the workers), or
# plain `uvicorn --workers 2` (its workers race to accept), e.g. for an older checkout.
if [ -z "${WEB_SERVER:-}" ]; then
  WEB_SERVER=uvicorn
  [ -f "$EARSHOT_ROOT/helpdesk/web_server.py" ] && WEB_SERVER=web_server
fi
OUT=${OUT:-$HERE/tests/perf/peer_runs/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { echo "[$(date -u +%T)] $*" >&2; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # port seconds name
  local i
  for i in $(seq 1 $(($2 * 5))); do port_busy "$1" && return 0; sleep 0.2; done
  log "$3 did not open 127.0.0.1:$1 in $2 s (logs in $OUT)"; return 1
}

pids=()
start() {  # name logfile cmd...: in a session of its own, so its children stop too
  local name=$1 logfile=$2; shift 2
  setsid "$@" > "$logfile" 2>&1 &
  pids+=("$!")
  log "started $name (pid $!)"
}
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  pids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "$PEER_PORT" "$EARSHOT_PORT"; do
  if port_busy "$port"; then log "127.0.0.1:$port is in use; stop it or pick another"; exit 1; fi
done

rev=$(git -C "$EARSHOT_ROOT" rev-parse --short HEAD)
revline=$(git -C "$EARSHOT_ROOT" log -1 --format='%h %s' | cut -c1-120)
dirty=$(git -C "$EARSHOT_ROOT" status --porcelain --untracked-files=no | wc -l)
log "Earshot under test: $EARSHOT_ROOT at $rev ($dirty changed tracked files); results in $OUT"

# ---------------------------------------------------------------- 1. the peer
log "peer: copy $PEERS_DIR to $PEER_WORK, fresh database $PEER_DB, setup.sh"
mkdir -p "$PEER_WORK"
tar -C "$PEERS_DIR" --exclude=.venv --exclude=runs --exclude=.env --exclude=__pycache__ \
  -cf - . | tar -C "$PEER_WORK" -xf -
chmod -R u+w "$PEER_WORK"
PEER=$PEER_WORK/django-helpdesk
(cd "$PEER" && PEER_PG_DB=$PEER_DB ./pg_local.sh --fresh) > "$OUT/peer_pg.log" 2>&1
(cd "$PEER" && PEER_PG_DB=$PEER_DB PYTHON=$PEER_PYTHON ./setup.sh) > "$OUT/peer_setup.log" 2>&1
start peer "$OUT/peer_server.log" env BIND="127.0.0.1:$PEER_PORT" WORKERS=2 "$PEER/serve.sh"

# ---------------------------------------------------------------- 2. Earshot
pg_host=127.0.0.1:5432
export DJANGO_SETTINGS_MODULE=helpdesk.settings
export DATABASE_URL=postgresql://$EARSHOT_APP@$pg_host/$EARSHOT_DB
export MIGRATOR_DATABASE_URL=postgresql://$EARSHOT_OWNER@$pg_host/$EARSHOT_DB
export REDIS_URL=redis://127.0.0.1:6379/$REDIS_DB
export CELERY_BROKER_URL=redis://127.0.0.1:6379/$BROKER_DB
export SECRET_KEY=peer-bench-only-secret-key-$(printf 'x%.0s' {1..40})
export EARSHOT_DEMO=0 DEBUG=0 SECURE_SSL_REDIRECT=0
export ALLOWED_HOSTS=127.0.0.1,localhost
export API_RATE_LIMIT=${API_RATE_LIMIT:-1000000/min}
export EMAIL_BACKEND=django.core.mail.backends.dummy.EmailBackend
export PYTHONPATH=$EARSHOT_ROOT
log "Earshot: fresh database $EARSHOT_DB (owner $EARSHOT_OWNER, runtime $EARSHOT_APP), migrate"
"$EARSHOT_PYTHON" "$HERE/scripts/peer_setup.py" database --superuser-url "$PG_SUPERUSER_URL" \
  --database "$EARSHOT_DB" --owner "$EARSHOT_OWNER" --app "$EARSHOT_APP"
(cd "$EARSHOT_ROOT" && "$EARSHOT_PYTHON" manage.py migrate --database migrator --noinput -v 0) \
  > "$OUT/earshot_migrate.log" 2>&1
workspace=$(cd "$EARSHOT_ROOT" && "$EARSHOT_PYTHON" "$HERE/scripts/peer_setup.py" workspace | tail -1)
read -r SLUG CHANNEL TOKEN < <("$EARSHOT_PYTHON" -c \
  'import json,sys; w=json.loads(sys.argv[1]); print(w["slug"], w["channel"], w["token"])' \
  "$workspace")
log "Earshot workspace $SLUG, API channel $CHANNEL"
redis-cli -n "$REDIS_DB" flushdb > /dev/null
[ "$BROKER_DB" = "$REDIS_DB" ] || redis-cli -n "$BROKER_DB" flushdb > /dev/null
cd "$EARSHOT_ROOT"
if [ "$WEB_SERVER" = uvicorn ]; then
  start uvicorn "$OUT/earshot_server.log" "$EARSHOT_PYTHON" -m uvicorn helpdesk.asgi:application \
    --host 127.0.0.1 --port "$EARSHOT_PORT" --workers 2 --lifespan off \
    --log-level warning --no-access-log
else
  start web_server "$OUT/earshot_server.log" "$EARSHOT_PYTHON" -m helpdesk.web_server \
    helpdesk.asgi:application --host 127.0.0.1 --port "$EARSHOT_PORT" --workers 2 \
    --log-level warning --no-access-log
fi
start celery "$OUT/earshot_worker.log" "$EARSHOT_PYTHON" -m celery -A helpdesk worker \
  -c "$CELERY_CONCURRENCY" -n "peerbench-$$@%h" -l info
cd "$HERE"

wait_port "$PEER_PORT" 60 peer
wait_port "$EARSHOT_PORT" 60 "$WEB_SERVER"
for _ in $(seq 1 300); do grep -q " ready\." "$OUT/earshot_worker.log" && break; sleep 0.2; done
grep -q " ready\." "$OUT/earshot_worker.log" || { log "celery worker not ready"; exit 1; }

api=http://127.0.0.1:$EARSHOT_PORT/api/v1/t/$SLUG
opts="token=$TOKEN,slug=$SLUG,channel=$CHANNEL"
targets=(--target "django-helpdesk=http://127.0.0.1:$PEER_PORT,label=django-helpdesk"
         --target "peer_adapter:EarshotPeer=http://127.0.0.1:$EARSHOT_PORT,label=earshot,$opts")
ping=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$api/ping/")
if [ "$ping" = 200 ]; then
  targets+=(--target "peer_adapter:EarshotPing=http://127.0.0.1:$EARSHOT_PORT,label=earshot-ping,$opts")
else
  log "baseline GET ping/ answered $ping: not measured"
fi

{ echo "date: $(date -u +%FT%TZ)"; echo "nproc: $(nproc)"
  lscpu | grep -E "Model name" || true; free -h | sed -n 2p; uname -srm
  echo "earshot: $EARSHOT_ROOT at $revline"
  echo "earshot changed tracked files: $dirty"
  echo "earshot python: $("$EARSHOT_PYTHON" --version), peer python: $("$PEER/.venv/bin/python" --version)"
  echo "ping: HTTP $ping"
  runuser -u postgres -- psql -qAt -c "select version()" 2>/dev/null || true
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"

# Other helpers share the machine: sample the busiest processes every ~4 s.
start sampler "$OUT/top.log" bash -c 'while :; do echo "== $(date -u +%T) load $(cut -d" " -f1-3 /proc/loadavg)"; top -bn1 -w 200 -o %CPU | sed -n 8,13p; sleep 4; done'

# ---------------------------------------------------------------- 3. bench.py
label="django-helpdesk 2.6.1 (gunicorn 2 sync) vs Earshot $rev ($WEB_SERVER, 2 uvicorn workers, runtime role, celery -c $CELERY_CONCURRENCY)"
cmd=("$PEER/.venv/bin/python" "$PEER/bench.py" -T "$T" -F "$F" -N "$N" -R "$R" --seed "$SEED"
     --label "$label" "${targets[@]}")
printf '%q ' "${cmd[@]}" | sed "s/$TOKEN/esk_.../g" > "$OUT/command.txt"; echo >> "$OUT/command.txt"
log "bench.py -T $T -F $F -N $N -R $R (${#targets[@]} target args)"
status=0
PYTHONPATH=$PEER_WORK:$HERE/tests/perf "${cmd[@]}" > "$OUT/bench.out" 2> >(tee "$OUT/bench.log" >&2) || status=$?
tail -1 "$OUT/bench.out" > "$OUT/summary.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
if [ -s "$OUT/summary.json" ]; then
  python3 "$HERE/scripts/peer_report.py" "$OUT/summary.json" \
    --title "Side by side, $(date -u +%F) (Earshot $rev)" > "$OUT/table.md" || status=$?
  cat "$OUT/table.md"
else
  log "bench.py wrote no summary; see $OUT/bench.log"
fi
log "results in $OUT (bench.py exit $status)"
exit "$status"
