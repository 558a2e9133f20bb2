"""Test settings: helpdesk.settings plus the overrides the suite needs.

The suite runs against real PostgreSQL (as the restricted runtime role, with RLS)
and real Redis (cache and rate limits on database 15).
"""

import os

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
_db_name = f"earshot_test{('_' + _worker) if _worker else ''}"
_pg = os.environ.get("TEST_PG_HOST", "127.0.0.1:5432")

os.environ.setdefault("DATABASE_URL", f"postgresql://earshot_test_app@{_pg}/{_db_name}")
os.environ.setdefault(
    "MIGRATOR_DATABASE_URL", f"postgresql://earshot_test_owner@{_pg}/{_db_name}"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
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
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
SECURE_SSL_REDIRECT = False
SITE_URL = "http://testserver"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
