"""Earshot's only settings module. Environments differ through env vars alone.

The defaults describe the embedded demo (`make demo`): SQLite, an in-memory channel
layer and an in-process Celery worker on kombu's memory transport. Production sets
DATABASE_URL (the restricted runtime role), MIGRATOR_DATABASE_URL (the table owner),
REDIS_URL, CELERY_BROKER_URL, SECRET_KEY and ALLOWED_HOSTS.
"""

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from kombu import Exchange, Queue

# Lets generic classes such as ModelAdmin[Brand] be subscripted at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """Return the env var `name`, or `default` when it is unset."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """Parse a boolean env var; anything but a clear yes/no is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """Parse an integer env var, optionally bounded below."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Parse a comma-separated env var into a list of non-empty items."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str, default: list[str]) -> list[str]:
    """Parse a comma-separated env var of networks (CIDR); a bad one is an error."""
    networks = env_list(name, default)
    try:
        for network in networks:
            ipaddress.ip_network(network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must list networks (CIDR): {exc}") from None
    return networks


def env_secret(name: str, *, demo_default: str, debug: bool) -> str:
    """Return a secret; outside debug/demo mode a missing or short one is an error."""
    raw = os.environ.get(name)
    if raw:
        if len(raw) < 32 and not debug:
            raise ImproperlyConfigured(f"{name} must be at least 32 characters long")
        return raw
    if debug:
        return demo_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off")


def env_database(name: str, default: str) -> dict[str, Any]:
    """Parse a database URL env var into a DATABASES entry."""
    raw = os.environ.get(name, default)
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(raw))
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(
            f"{name} is not a valid database URL: {exc}"
        ) from exc
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name} has an unsupported scheme: {raw!r}")
    return config


# --- Core -------------------------------------------------------------------------

# The demo is the SQLite, single-process mode; it relaxes secrets, email and MFA.
DEMO = env_bool(
    "EARSHOT_DEMO",
    default=os.environ.get("DATABASE_URL", "sqlite:").startswith("sqlite:"),
)
DEBUG = env_bool("DEBUG", default=DEMO)
SECRET_KEY = env_secret(
    "SECRET_KEY",
    demo_default="earshot-demo-only-secret-key-not-for-production",
    debug=DEBUG,
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# Exact origins (scheme://host[:port]) whose pages may open the live websocket;
# empty: SITE_URL's origin plus CSRF_TRUSTED_ORIGINS (helpdesk/websocket_guard.py).
WEBSOCKET_ALLOWED_ORIGINS = env_list("WEBSOCKET_ALLOWED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Our apps come before allauth so our templates override its layouts.
    "tenants",
    "helpdesk",
    "social",
    "social.sandbox",
    "frontend",
    "incidents",
    "goodwill",
    "spikes",
    "advocacy",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
]

MIDDLEWARE = [
    # The request id of every log line, echoed in X-Request-ID (one ContextVar).
    "helpdesk.observability.logs.RequestIdMiddleware",
    # Outermost: a request that failed on an outage answers 503 with Retry-After
    # (also with DEBUG), whichever middleware or view raised.
    "helpdesk.outage.OutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the UI's CSS and ES modules) from STATIC_ROOT, before sessions.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, CSRF, auth and messages middleware, passing API calls that
    # carry a token straight through (tenants/middleware.py, "the token lane").
    "tenants.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tenants.middleware.CsrfViewMiddleware",
    "tenants.middleware.AuthenticationMiddleware",
    "tenants.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Django's, with a response's nonce-free policy built once (tenants/middleware.py).
    "tenants.middleware.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "tenants.middleware.TenantMiddleware",
]

ROOT_URLCONF = "helpdesk.urls"
ASGI_APPLICATION = "helpdesk.asgi.application"
# Idle request threads each web process keeps for the next requests
# (helpdesk/asgi_handler.py); requests in flight are not limited by it.
ASGI_THREADS = env_int("ASGI_THREADS", 16, minimum=1)
# The cyclic garbage collector of web and worker processes (helpdesk/gc_tuning.py).
# Freeze what a process loaded at start (Django, DRF, the URLconf, the language
# model: about 184k objects) out of full collections: 127-156 ms of CPU each, about
# 5 ms after; memory is unchanged. The young generation's threshold stays CPython's
# (2,000) unless set: 10,000 saved nothing measurable.
GC_FREEZE_AT_START = env_bool("GC_FREEZE_AT_START", default=True)
GC_GEN0_THRESHOLD = env_int("GC_GEN0_THRESHOLD", 0, minimum=0) or None
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frontend.context_processors.workspace",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------
# `default` is the restricted runtime role (RLS applies to it); `migrator` is the
# table owner and is used only by `manage.py migrate --database migrator`.

DATABASES: dict[str, dict[str, Any]] = {
    "default": env_database(
        "DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'demo.sqlite3'}"
    ),
}
if os.environ.get("MIGRATOR_DATABASE_URL"):
    DATABASES["migrator"] = env_database("MIGRATOR_DATABASE_URL", "")
# PostgreSQL connections come from psycopg's pool (a Celery task or a request would
# otherwise open a new connection each time). Safe with RLS: the tenant setting is
# SET LOCAL, gone when the transaction ends, so a pooled connection carries nothing.
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 10, minimum=0)
# How long a request or task waits for a pooled connection before it fails (the
# API answers 503). psycopg's default, 30 s, outlasts clients' timeouts: with
# pgbouncer or PostgreSQL down for long, requests hung instead of answering 503
# (tests/faults/test_pgbouncer_restart.py with FAULTS_PGBOUNCER_DOWN=25).
DATABASE_POOL_TIMEOUT = env_int("DATABASE_POOL_TIMEOUT", 5, minimum=1)
for _db in DATABASES.values():
    _db.setdefault("CONN_MAX_AGE", 0)
    if _db["ENGINE"].endswith("sqlite3"):
        # The demo's web requests and in-process worker write at once. IMMEDIATE
        # takes the write lock at BEGIN, so a transaction that reads before it writes
        # waits its turn (up to `timeout` seconds) instead of failing with "database
        # is locked"; WAL lets reads go on beside the one writer.
        _db.setdefault("OPTIONS", {}).update(
            timeout=20,
            transaction_mode="IMMEDIATE",
            init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        )
    elif _db["ENGINE"].endswith("postgresql") and DATABASE_POOL_MAX:
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DATABASE_POOL_MAX,
            "timeout": DATABASE_POOL_TIMEOUT,
        }
# Behind pgbouncer in transaction mode (DATABASE_PGBOUNCER=1) a connection may be
# another server session at each transaction: no server-side prepared statements
# (pgbouncer 1.18 does not track them) and no server-side cursors (a DECLARE
# outlives the transaction that the pooler ends). SET LOCAL stays safe: it ends
# with its transaction (tests/test_pgbouncer_isolation.py shows both).
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", default=False)
if DATABASE_PGBOUNCER:
    _runtime = DATABASES["default"]
    _runtime["DISABLE_SERVER_SIDE_CURSORS"] = True
    _runtime.setdefault("OPTIONS", {}).update(
        server_side_binding=False, prepare_threshold=None
    )
# Prepared statements on direct PostgreSQL connections: values are bound
# server-side and psycopg prepares a statement once it has run
# DATABASE_PREPARE_THRESHOLD times on a connection (pooled connections live on), so
# PostgreSQL parses and plans the hot paths' statements once per connection instead
# of on every request: about 0.8 ms of its CPU per API create, 0.9 ms per reply
# (pg_stat_statements, tests/perf/RESULTS.md). Plans stay RLS-exact: the tenant is
# read by current_setting() when a statement runs, not when it is planned.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", default=True)
DATABASE_PREPARE_THRESHOLD = env_int("DATABASE_PREPARE_THRESHOLD", 2, minimum=0)
if (
    DATABASE_PREPARED_STATEMENTS
    and not DATABASE_PGBOUNCER
    and DATABASES["default"]["ENGINE"].endswith("postgresql")
):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=DATABASE_PREPARE_THRESHOLD
    )
DATABASE_ROUTERS = ["tenants.routers.MigratorRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth (django-allauth) --------------------------------------------------------

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "frontend:home"
ACCOUNT_ADAPTER = "tenants.adapters.WorkspaceAccountAdapter"
ACCOUNT_SIGNUP_FORM_CLASS = "tenants.forms.WorkspaceSignupForm"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# A taken address is reported on the sign-up form (issue 2); the signup rate limit
# below bounds how fast anyone can probe addresses that way.
ACCOUNT_PREVENT_ENUMERATION = False
ACCOUNT_EMAIL_VERIFICATION = env_str(
    "ACCOUNT_EMAIL_VERIFICATION", "optional" if DEMO else "mandatory"
)
if ACCOUNT_EMAIL_VERIFICATION not in {"mandatory", "optional", "none"}:
    raise ImproperlyConfigured(
        "ACCOUNT_EMAIL_VERIFICATION must be mandatory/optional/none"
    )
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Earshot"
# Operators must have TOTP enabled to use /admin/; the demo relaxes this.
OPERATOR_MFA_REQUIRED = env_bool("OPERATOR_MFA_REQUIRED", default=not DEMO)
INVITATION_MAX_AGE_DAYS = env_int("INVITATION_MAX_AGE_DAYS", 7, minimum=1)

# --- Email ------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env_str(
    "DEFAULT_FROM_EMAIL", "Earshot <no-reply@earshot.localhost>"
)
if DEMO:
    MAILERS: dict[str, dict[str, Any]] = {
        "default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    }
else:
    MAILERS = {
        "default": {
            "BACKEND": env_str(
                "EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"
            ),
            "OPTIONS": {
                "host": env_str("EMAIL_HOST", "localhost"),
                "port": env_int("EMAIL_PORT", 587, minimum=1),
                "username": env_str("EMAIL_HOST_USER", ""),
                "password": env_str("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", default=True),
            },
        }
    }

# --- Cache, channels, Celery ------------------------------------------------------


def channel_layer_prefix(redis_url: str) -> str:
    """The pub/sub channel layer's prefix for a deployment on `redis_url`:
    "asgi-db<N>" on database N, and on database 0 channels-redis's own default,
    "asgi", so that an upgrade's old and new processes there still share groups.
    The database is the URL's `db` query option, else its path (redis://,
    rediss://), the order redis-py reads them in."""
    parts = urlsplit(redis_url)
    raw = parse_qs(parts.query).get("db", [""])[0]
    if not raw and parts.scheme in ("redis", "rediss"):
        raw = parts.path.strip("/")
    try:
        database = int(raw or 0)
    except ValueError:
        raise ImproperlyConfigured(
            f"REDIS_URL must name its database by number, got {raw!r}"
        ) from None
    return "asgi" if database == 0 else f"asgi-db{database}"


REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES: dict[str, dict[str, Any]] = {
        "default": {
            # Django's, with the connections kept across requests (helpdesk/cache.py).
            "BACKEND": "helpdesk.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "earshot"),
            # Bounded waits: a Redis that stops answering (rather than refusing)
            # must not hold requests; its callers carry on without it.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    # Redis pub/sub channels belong to the server, not to a database: two
    # deployments on one Redis server (staging on /1, production on /0) would hear
    # each other's groups, which share names (inbox.t1 in both). The prefix keeps
    # them apart: CHANNEL_LAYER_PREFIX, else one derived from REDIS_URL's database
    # (channel_layer_prefix). Every process of a deployment must agree on it.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env_str(
                    "CHANNEL_LAYER_PREFIX", channel_layer_prefix(REDIS_URL)
                ),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
# Production broker: RabbitMQ (amqp://), durable queues, acknowledged late. It hands
# a dead consumer's unacknowledged tasks to another worker at once. Redis works but
# gives them back only after visibility_timeout (README, "Broker").
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL.startswith("memory"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.02}
elif CELERY_BROKER_URL.startswith(("redis", "rediss")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Must outlast the longest ETA/countdown (backoff up to 10 min, the hold,
        # webhook retries up to 15 min): past it Redis hands the task out again.
        "visibility_timeout": 2 * 3600,
        # Give up on a dead socket instead of waiting for ever, then reconnect.
        "socket_timeout": 10.0,
        "socket_connect_timeout": 5.0,
        # False: a timed-out LPUSH re-sent on another connection can publish twice.
        "retry_on_timeout": False,
        "health_check_interval": 10,
    }
# RabbitMQ runs without publisher confirms (`confirm_publish`): measured here, a
# worker that published a task from inside a task (a sweep handing out a reply)
# received it only about 10 s later, at its next wake-up, against 1 ms without. A
# publish lost to a broker crash is covered anyway: everything a task carries is a
# stored row (reply, webhook event, outbound delivery) that a beat sweep re-queues.

# Workers survive broker outages: retry the connection for ever (the default gives
# up after 100 attempts and the worker exits), also at startup, and on channel errors.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
CELERY_BROKER_CONNECTION_TIMEOUT = 5.0
CELERY_BROKER_HEARTBEAT = 30
# Off: with it on, a prefork worker exited on the third Redis outage in a row
# (ValueError('file descriptor is None') re-registering a pool child it had
# cancelled), while with it off it survived four of four. A task redelivered while
# its first copy still runs is harmless: tasks are idempotent, and a reply's claim
# is held per attempt under a lease (helpdesk.services.delivery.CLAIM_LEASE).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# A request must not hang on a broker outage: two quick retries, then the caller
# gets the error (the API answers 503; the sweeps enqueue what was stored).
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.1,
    "interval_step": 0.1,
    "interval_max": 0.2,
}
# Task queues are durable (kombu's default for the queues Celery declares) and
# messages persistent, so a RabbitMQ restart keeps them.
CELERY_TASK_DEFAULT_DELIVERY_MODE = "persistent"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = False
# Three queues, each with workers of its own (Procfile): a flood of inbound work
# never delays replies that are due. Every task is routed here; a test checks that
# none is left to the default by accident.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name, durable=True)
    for name in ("inbound", "delivery", "default")
]
_TASK_QUEUES: dict[str, tuple[str, ...]] = {
    "inbound": (
        "social.process_webhook_event",
        "social.sweep_webhook_events",
        "helpdesk.record_inbound_item",
        "social.poll_account",
        "social.poll_due_accounts",
        "social.poll_all_tenants",
        "social.decide_waiting_items",
        "social.decide_all_waiting_items",
    ),
    "delivery": (
        "helpdesk.deliver_message",
        "helpdesk.sweep_outbox",
        "helpdesk.sweep_outboxes",
    ),
    "default": (
        "incidents.send_update",
        "incidents.sweep_updates",
        "incidents.sweep_all_updates",
        "incidents.link_new_conversations",
        "helpdesk.wake_snoozed",
        "helpdesk.wake_all_snoozed",
        "helpdesk.deliver_webhook",
        "helpdesk.send_webhook_disabled_email",
        "goodwill.send_low_pool_email",
        "helpdesk.sweep_webhook_deliveries",
        "helpdesk.sweep_all_webhook_deliveries",
        "helpdesk.sweep_sla_clocks",
        "helpdesk.sweep_all_sla_clocks",
        "helpdesk.send_sla_digests",
        "helpdesk.send_all_sla_digests",
        "spikes.detect_spikes",
        "spikes.detect_all_spikes",
        "advocacy.suggest_advocates",
        "advocacy.suggest_all_advocates",
        "social.refresh_account_token",
        "social.refresh_due_tokens",
        "social.refresh_all_tenants",
        "social.refresh_engagement",
        "social.refresh_all_engagement",
        "tenants.send_invitation_email",
        "sandbox.deliver_webhook",
    ),
}
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {
    task: {"queue": queue} for queue, tasks in _TASK_QUEUES.items() for task in tasks
}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Hand lost or stuck outbound replies back to delivery (invariant 3).
    # Every 10 s: a reply whose worker died is taken over within about 30 s
    # (helpdesk.services.delivery.CLAIM_LEASE). One small task per active tenant.
    "sweep-outboxes": {"task": "helpdesk.sweep_outboxes", "schedule": 10.0},
    # Snoozed conversations wake up by themselves.
    "wake-snoozed": {"task": "helpdesk.wake_all_snoozed", "schedule": 30.0},
    # Poll accounts on platforms without webhooks (each account has its own backoff).
    "poll-accounts": {"task": "social.poll_all_tenants", "schedule": 30.0},
    # Queue stored webhook deliveries whose task was lost (invariant 2).
    "sweep-webhook-events": {"task": "social.sweep_webhook_events", "schedule": 30.0},
    # Decide out-of-order replies whose thread arrived or whose wait is over.
    "decide-waiting-items": {
        "task": "social.decide_all_waiting_items",
        "schedule": 30.0,
    },
    # Refresh access tokens that expire within social.tokens.REFRESH_AHEAD (10 min).
    "refresh-tokens": {"task": "social.refresh_all_tenants", "schedule": 300.0},
    # Read the engagement of open public conversations whose read is due (R13:
    # every 2 min in a post's first hour, then less often; social.engagement keeps
    # to each platform's limits) and flag the spreading ones.
    "refresh-engagement": {
        "task": "social.refresh_all_engagement",
        "schedule": 30.0,
    },
    # Re-enqueue outbound webhook deliveries that are due (lost messages, retries).
    "sweep-webhook-deliveries": {
        "task": "helpdesk.sweep_all_webhook_deliveries",
        "schedule": 60.0,
    },
    # SLA clocks that ran out (breach facts, events, the sla_breached webhook) or
    # entered their last fifth ("due soon"), per tenant.
    "sweep-sla-clocks": {"task": "helpdesk.sweep_all_sla_clocks", "schedule": 30.0},
    # The daily SLA digest: hourly, because each brand's morning is in its own
    # time zone; each brand gets one email per local day (helpdesk.services.digest).
    "sla-digests": {"task": "helpdesk.send_all_sla_digests", "schedule": 3600.0},
    # Inbound spikes per brand (R13): count the last five minutes, open or close
    # alerts (spikes.services.detect_spikes), per tenant.
    "detect-spikes": {"task": "spikes.detect_all_spikes", "schedule": 300.0},
    # Incident updates whose task was lost (a dead worker) resume (incidents.updates).
    "sweep-incident-updates": {
        "task": "incidents.sweep_all_updates",
        "schedule": 30.0,
    },
    # Advocate suggestions (R14) from the inbound messages since the last scan;
    # a person confirms or dismisses each one (advocacy.services).
    "suggest-advocates": {
        "task": "advocacy.suggest_all_advocates",
        "schedule": 3600.0,
    },
}

# --- Social platforms ---------------------------------------------------------------
# Earshot's own app on each platform. Connectors receive these as AppSecrets; the
# base URL is overridable so a deployment (or a test) can point at another host.
SOCIAL_PLATFORMS = (
    "sandbox",
    "x",
    "facebook",
    "instagram",
    "reddit",
    "mastodon",
    "bluesky",
)
SOCIAL_APPS: dict[str, dict[str, str]] = {
    platform: {
        "client_id": env_str(f"{platform.upper()}_CLIENT_ID", ""),
        "client_secret": env_str(f"{platform.upper()}_CLIENT_SECRET", ""),
        "webhook_secret": env_str(f"{platform.upper()}_WEBHOOK_SECRET", ""),
        "verify_token": env_str(f"{platform.upper()}_VERIFY_TOKEN", ""),
        "base_url": env_str(f"{platform.upper()}_BASE_URL", ""),
    }
    for platform in SOCIAL_PLATFORMS
}
# Master keys for third-party tokens at rest, newest first (rotation: prepend a key,
# run `manage.py rotate_credentials`, then drop the old one).
TOKEN_ENCRYPTION_KEYS = env_list("TOKEN_ENCRYPTION_KEYS", [SECRET_KEY])
# Development only: let admins connect Mastodon instances over plain http. Their
# addresses still go through the SSRF guard (tenants/netguard.py): a local instance
# needs its network in WEBHOOKS_ALLOWED_PRIVATE_NETS too.
MASTODON_ALLOW_INSECURE = env_bool("MASTODON_ALLOW_INSECURE", default=False)
# The Sandbox network (a pretend platform for the demo and the tests). Off unless
# SANDBOX_ENABLED; its URLs are 404 then.
SANDBOX_ENABLED = env_bool("SANDBOX_ENABLED", default=DEMO)
SANDBOX_RATE_LIMIT_PER_MINUTE = env_int("SANDBOX_RATE_LIMIT_PER_MINUTE", 600, minimum=1)
if not SOCIAL_APPS["sandbox"]["base_url"]:
    SOCIAL_APPS["sandbox"]["base_url"] = SITE_URL.rstrip("/") + "/sandbox"
if DEMO:
    SOCIAL_APPS["sandbox"] = {
        **SOCIAL_APPS["sandbox"],
        "client_id": SOCIAL_APPS["sandbox"]["client_id"] or "earshot-demo",
        "client_secret": SOCIAL_APPS["sandbox"]["client_secret"]
        or "earshot-demo-secret",
        "webhook_secret": SOCIAL_APPS["sandbox"]["webhook_secret"]
        or "earshot-demo-hook",
    }
WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 1024 * 1024, minimum=1024)
# Stored deliveries still `received` this long after a worker last touched them are
# queued again by the sweep (their task was lost), at most WEBHOOK_SWEEP_BATCH a run.
WEBHOOK_SWEEP_AFTER_SECONDS = env_int("WEBHOOK_SWEEP_AFTER_SECONDS", 60, minimum=5)
WEBHOOK_SWEEP_BATCH = env_int("WEBHOOK_SWEEP_BATCH", 500, minimum=1)
# Stored webhook events one ingest task claims and records together (SKIP LOCKED).
WEBHOOK_INGEST_BATCH = env_int("WEBHOOK_INGEST_BATCH", 100, minimum=1)
# Reply delivery: replies one task claims and sends together, and platform calls in
# flight per worker process (each account's send limit still applies).
DELIVERY_BATCH_SIZE = env_int("DELIVERY_BATCH_SIZE", 100, minimum=1)
DELIVERY_CONCURRENCY = env_int("DELIVERY_CONCURRENCY", 32, minimum=1)
# Replies due within one slot of this many milliseconds queue one delivery task per
# workspace, not one each (helpdesk/services/delivery_slots.py); 0 = one per reply.
DELIVERY_SLOT_MS = env_int("DELIVERY_SLOT_MS", 250, minimum=0)
# Webhook group commit (social/group_commit.py): how long a group waits for more
# deliveries (0 = only those that arrive while the previous insert is in flight),
# and its size bounds.
WEBHOOK_GROUP_WINDOW_MS = env_int("WEBHOOK_GROUP_WINDOW_MS", 0, minimum=0)
WEBHOOK_GROUP_MAX_ROWS = env_int("WEBHOOK_GROUP_MAX_ROWS", 500, minimum=1)
WEBHOOK_GROUP_MAX_BYTES = env_int(
    "WEBHOOK_GROUP_MAX_BYTES", 4 * 1024 * 1024, minimum=1024
)
# How long the publisher waits for the next groups' event ids before it sends a task
# message with fewer than 128 of them (a message costs a few hundred us of CPU).
WEBHOOK_PUBLISH_LINGER_MS = env_int("WEBHOOK_PUBLISH_LINGER_MS", 5, minimum=0)
# An untagged reply that arrives before its thread waits this long for it, then is
# decided on its own merits (social/waiting.py).
INBOUND_WAIT_FOR_THREAD_SECONDS = env_int(
    "INBOUND_WAIT_FOR_THREAD_SECONDS", 600, minimum=0
)

# --- Outbound webhooks ------------------------------------------------------------
# The SSRF guard (helpdesk/webhooks/ssrf.py) refuses every non-public address. Plain
# http:// only for development; ports other than these are refused; the private
# networks listed here are let through anyway (empty in production: tests list
# 127.0.0.1/32 for their loopback receivers).
WEBHOOKS_ALLOW_HTTP = env_bool("WEBHOOKS_ALLOW_HTTP", default=False)
_webhook_ports = env_list("WEBHOOKS_ALLOWED_PORTS", ["443"])
if not all(port.isdigit() and 0 < int(port) < 65536 for port in _webhook_ports):
    raise ImproperlyConfigured(
        f"WEBHOOKS_ALLOWED_PORTS must list port numbers, got {_webhook_ports!r}"
    )
WEBHOOKS_ALLOWED_PORTS = [int(port) for port in _webhook_ports]
WEBHOOKS_ALLOWED_PRIVATE_NETS = env_networks("WEBHOOKS_ALLOWED_PRIVATE_NETS", [])
# An endpoint is disabled (and its admins emailed) after this many failed attempts
# in a row, or when a delivery gives up and nothing has succeeded for 24 hours.
WEBHOOKS_DISABLE_AFTER_FAILURES = env_int(
    "WEBHOOKS_DISABLE_AFTER_FAILURES", 15, minimum=1
)
WEBHOOKS_DELIVERY_RETENTION_DAYS = env_int(
    "WEBHOOKS_DELIVERY_RETENTION_DAYS", 30, minimum=1
)

# --- Care rules (R8) ---------------------------------------------------------------
# The automatic away reply to a conversation's first message outside the brand's
# business hours (helpdesk/services/away.py), and the per-client request limit of the
# public status endpoint (/status/<tenant>/<brand>.json).
AWAY_REPLIES_ENABLED = env_bool("AWAY_REPLIES_ENABLED", default=True)
STATUS_RATE_LIMIT_PER_MINUTE = env_int("STATUS_RATE_LIMIT_PER_MINUTE", 120, minimum=1)

# --- REST API -----------------------------------------------------------------------

API_RATE_LIMIT = env_str("API_RATE_LIMIT", "1200/min")
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api_auth.ApiTokenAuthentication",
        "tenants.api_auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.api_auth.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api": API_RATE_LIMIT},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tenants.api_negotiation.ContentNegotiation",
    "DEFAULT_PARSER_CLASSES": ["helpdesk.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "helpdesk.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Earshot API",
    "DESCRIPTION": (
        "Conversations, replies, contacts and settings of one workspace. "
        "Authenticate with `Authorization: Bearer esk_...` (a token from Settings → "
        "API tokens); every path starts with `/api/v1/t/<workspace slug>/`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1/t/[^/]+",
    # Choice sets that share a field name get stable names of their own.
    "ENUM_NAME_OVERRIDES": {
        "PlatformEnum": "social.models.Platform",
        "ConversationStatusEnum": "helpdesk.models.Conversation.Status",
        "SocialAccountStatusEnum": "social.models.SocialAccount.Status",
    },
}

# --- Security ---------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# --- i18n, static -----------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# whitenoise serves STATIC_ROOT once `collectstatic` has filled it; without that
# (the demo, the tests) it finds the files in the apps, re-checked per request.
WHITENOISE_USE_FINDERS = env_bool(
    "WHITENOISE_USE_FINDERS", default=DEBUG or not STATIC_ROOT.is_dir()
)
WHITENOISE_AUTOREFRESH = WHITENOISE_USE_FINDERS

# --- Observability ----------------------------------------------------------------
# /metrics (helpdesk/observability/views.py): with METRICS_TOKEN set, only requests
# with `Authorization: Bearer <METRICS_TOKEN>`; without it, only clients whose
# address is in METRICS_ALLOWED_NETS (CIDR; loopback by default).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long")
METRICS_ALLOWED_NETS = env_networks("METRICS_ALLOWED_NETS", ["127.0.0.0/8", "::1/128"])
# plain: the line format below; json: one JSON object per line with the tenant and
# request or task id (helpdesk/observability/logs.py). Both redact secrets and PII.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "helpdesk.observability.logs.PlainFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "helpdesk.observability.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
if LOG_FORMAT == "json":
    # uvicorn's own lines (started, errors, access) through the same JSON handler;
    # uvicorn configures these loggers before it imports the app, Django after.
    # Django's default handler for "django" (DEBUG only) would print a second,
    # plain copy of each request error.
    LOGGING["loggers"].update(
        {
            "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {
                "handlers": ["console"],
                "level": "INFO",
                "propagate": False,
            },
        }
    )
# A Celery worker replaces the root logger's handlers with its own format unless
# told not to; with JSON logs it keeps ours.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
