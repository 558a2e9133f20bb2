"""Test settings: helpdesk.settings plus the overrides the suite needs.

The suite runs against real PostgreSQL (as the restricted runtime role, with RLS)
and real Redis (cache and rate limits on database 15, or the xdist worker's own:
tests/redis_dbs.py).
"""

import os

from tests.redis_dbs import layer_prefix, redis_url, test_worker

_worker = test_worker()
_db_name = f"earshot_test{('_' + _worker) if _worker else ''}"
_pg = os.environ.get("TEST_PG_HOST", "127.0.0.1:5432")


def _derived(name: str, value: str) -> None:
    """Set `name` unless the environment gave it. A value this module derived in a
    parent process (pytest-xdist's controller imports these settings before it
    starts the workers) is derived again here, for this worker."""
    marker = f"EARSHOT_TEST_DERIVED_{name}"
    if name not in os.environ or os.environ[name] == os.environ.get(marker):
        os.environ[name] = os.environ[marker] = value


if "REDIS_URL" in os.environ and os.environ["REDIS_URL"] != os.environ.get(
    "EARSHOT_TEST_DERIVED_REDIS_URL"
):
    os.environ.setdefault("EARSHOT_TEST_REDIS_URL", os.environ["REDIS_URL"])
_derived("DATABASE_URL", f"postgresql://earshot_test_app@{_pg}/{_db_name}")
_derived("MIGRATOR_DATABASE_URL", f"postgresql://earshot_test_owner@{_pg}/{_db_name}")
_derived("REDIS_URL", redis_url("cache"))
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "x" * 40)
os.environ.setdefault("EARSHOT_DEMO", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from helpdesk.settings import *  # noqa: E402, F403
from helpdesk.settings import DATABASES  # noqa: E402

TEST_PG_SUPERUSER_URL = os.environ.get(
    "TEST_PG_SUPERUSER_URL", f"postgresql://postgres@{_pg}/postgres"
)
DATABASES["default"]["ENGINE"] = "tests.pgbackend"
DATABASES["default"]["TEST"] = {"NAME": _db_name}
DATABASES["migrator"]["TEST"] = {"NAME": _db_name}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# EARSHOT_TEST_EAGER=0 is a real `celery worker` started by the end-to-end tests and
# benchmarks: it takes tasks from the broker (CELERY_BROKER_URL) and pushes events
# over channels-redis pub/sub to the test process's websocket clients.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("EARSHOT_TEST_EAGER", "1") == "1"
if not CELERY_TASK_ALWAYS_EAGER:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [os.environ["REDIS_URL"]],
                "prefix": layer_prefix(os.environ["REDIS_URL"]),
            },
        }
    }
CELERY_TASK_EAGER_PROPAGATES = True
SECURE_SSL_REDIRECT = False
# The away reply (R8) depends on the wall clock against the brands' default hours;
# tests that exercise it switch it on (tests/helpdesk/test_away_reply.py).
AWAY_REPLIES_ENABLED = False
SITE_URL = "http://testserver"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The Sandbox network is on in tests, with Earshot registered as an app on it.
SANDBOX_ENABLED = True
SOCIAL_APPS["sandbox"] = {  # noqa: F405
    "client_id": "earshot-test",
    "client_secret": "earshot-test-secret",
    "webhook_secret": "earshot-test-hook",
    "verify_token": "",
    "base_url": "http://testserver/sandbox",
}
