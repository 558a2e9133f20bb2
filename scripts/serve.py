"""`make serve`: Earshot as production runs it, on this machine, in one command.

  python scripts/serve.py            roles, migrations, pgbouncer's config, then
                                     `honcho start` of the Procfile (Ctrl-C stops all)
  python scripts/serve.py manage ...  a manage.py command with the same settings
                                     (e.g. `manage createsuperuser`)
  python scripts/serve.py wait-db    used by the Procfile: wait for pgbouncer

PostgreSQL, Redis and (with EARSHOT_BROKER=rabbitmq) RabbitMQ must be up. Every
setting below has a default for this machine; README "Running it for real" lists
them. Nothing here is a production secret: a SECRET_KEY that is not in the
environment is generated once into var/serve/secret_key.
"""

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "var" / "serve"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from helpdesk.pgbouncer import PgbouncerConfig, command, wait_listening  # noqa: E402

BROKERS = {
    "redis": "redis://127.0.0.1:6379/1",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


def _get(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _url(user: str, password: str, host: str, port: str, database: str) -> str:
    auth = quote(user) + (f":{quote(password)}" if password else "")
    return f"postgresql://{auth}@{host}:{port}/{database}"


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _secret_key() -> str:
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = RUN / "secret_key"
    if not path.exists():
        RUN.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


class Plan:
    """The settings of one `make serve`, from the environment."""

    def __init__(self) -> None:
        self.host = _get("HOST", "127.0.0.1")
        self.port = _get("PORT", "8000")
        self.database = _get("EARSHOT_DB", "earshot")
        self.owner = _get("EARSHOT_DB_OWNER", "earshot_owner")
        self.app = _get("EARSHOT_DB_APP", "earshot_app")
        self.owner_password = _get("EARSHOT_DB_OWNER_PASSWORD", "")
        self.app_password = _get("EARSHOT_DB_APP_PASSWORD", "")
        self.pg_host = _get("PG_HOST", "127.0.0.1")
        self.pg_port = _get("PG_PORT", "5432")
        self.superuser_url = os.environ.get(
            "PG_SUPERUSER_URL", f"postgresql://postgres@{self.pg_host}:{self.pg_port}"
        )
        self.bouncer_port = int(_get("PGBOUNCER_PORT", "6433"))
        self.broker = _get("EARSHOT_BROKER", "redis")
        if self.broker not in BROKERS:
            sys.exit(
                f"serve: EARSHOT_BROKER must be redis or rabbitmq, not {self.broker}"
            )
        self.broker_url = _get("CELERY_BROKER_URL", BROKERS[self.broker])
        self.redis_url = _get("REDIS_URL", "redis://127.0.0.1:6379/0")

    def bouncer(self) -> PgbouncerConfig:
        return PgbouncerConfig(
            directory=RUN / "pgbouncer",
            listen_port=self.bouncer_port,
            databases=(self.database,),
            users={self.app: self.app_password or None},
            upstream_host=self.pg_host,
            upstream_port=int(self.pg_port),
            pool_size=int(_get("PGBOUNCER_POOL_SIZE", "20")),
        )

    def env(self, *, through_bouncer: bool = True) -> dict[str, str]:
        """The processes' environment: what the caller set wins over our defaults."""
        runtime_host, runtime_port = (
            ("127.0.0.1", str(self.bouncer_port))
            if through_bouncer
            else (self.pg_host, self.pg_port)
        )
        defaults = {
            "EARSHOT_DEMO": "0",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SITE_URL": f"http://{self.host}:{self.port}",
            # Plain http on this machine; behind a TLS proxy, set it to 1.
            "SECURE_SSL_REDIRECT": "0",
            "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
            "WEB_CONCURRENCY": "2",
            "CELERY_INBOUND_CONCURRENCY": "2",
            "CELERY_DELIVERY_CONCURRENCY": "2",
            "CELERY_DEFAULT_CONCURRENCY": "2",
        }
        forced = {
            "DATABASE_URL": _url(
                self.app, self.app_password, runtime_host, runtime_port, self.database
            ),
            # Migrations talk to PostgreSQL directly (DDL, session locks).
            "MIGRATOR_DATABASE_URL": _url(
                self.owner,
                self.owner_password,
                self.pg_host,
                self.pg_port,
                self.database,
            ),
            "DATABASE_PGBOUNCER": "1" if through_bouncer else "0",
            "CELERY_BROKER_URL": self.broker_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": _secret_key(),
            "HOST": self.host,
            "WEB_PORT": self.port,
            "PGBOUNCER_COMMAND": " ".join(command(self.bouncer())),
            "PGBOUNCER_PORT": str(self.bouncer_port),
            "BEAT_SCHEDULE": str(RUN / "celerybeat-schedule"),
            # /metrics sums every process's values from files here (helpdesk.metrics).
            "PROMETHEUS_MULTIPROC_DIR": str(RUN / "metrics"),
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin",
        }
        return {**defaults, **os.environ, **forced}


def prepare(plan: Plan) -> None:
    """Roles and database (when a superuser URL is given), migrations as the owner,
    and pgbouncer's configuration."""
    from tenants.dbroles import RolePlan, ensure_roles_and_database

    (RUN / "metrics").mkdir(parents=True, exist_ok=True)
    if plan.superuser_url:
        ensure_roles_and_database(
            RolePlan(
                superuser_url=plan.superuser_url,
                database=plan.database,
                owner=plan.owner,
                app=plan.app,
                owner_password=plan.owner_password or None,
                app_password=plan.app_password or None,
            )
        )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "migrator", "-v", "0"],
        cwd=ROOT,
        env=plan.env(through_bouncer=False),
        check=True,
    )
    plan.bouncer().write()
    # A previous run's values (and the migration's) would be summed in otherwise.
    from helpdesk.metrics import clear_multiprocess_dir

    clear_multiprocess_dir(str(RUN / "metrics"))


def banner(plan: Plan, env: dict[str, str]) -> str:
    site = f"http://{plan.host}:{plan.port}"
    workers = ", ".join(
        f"{queue} x{env[f'CELERY_{queue.upper()}_CONCURRENCY']}"
        for queue in ("inbound", "delivery", "default")
    )
    return f"""
Earshot, production topology (make serve); Ctrl-C stops everything.
  web        {site}/  ({env["WEB_CONCURRENCY"]} uvicorn workers behind one acceptor)
             liveness {site}/healthz, readiness {site}/readyz, metrics {site}/metrics
  pgbouncer  127.0.0.1:{plan.bouncer_port} (transaction mode) -> PostgreSQL \
{plan.pg_host}:{plan.pg_port}/{plan.database}
  database   runtime role {plan.app} through pgbouncer; migrated as {plan.owner}
  broker     {_redacted(plan.broker_url)} ({plan.broker})
  redis      {_redacted(plan.redis_url)} (cache, channel layer pub/sub)
  workers    {workers}; beat
  an account: python scripts/serve.py manage createsuperuser
"""


def serve() -> None:
    plan = Plan()
    prepare(plan)
    env = plan.env()
    print(banner(plan, env), flush=True)  # noqa: T201
    honcho = shutil.which("honcho", path=str(BIN)) or "honcho"
    os.chdir(ROOT)
    os.execve(honcho, [honcho, "start", "-f", "Procfile", "-d", str(ROOT)], env)  # noqa: S606


def main() -> None:
    action = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if action == "serve":
        serve()
    elif action == "wait-db":
        # The Procfile's processes start together; pgbouncer listens within ms.
        wait_listening("127.0.0.1", int(_get("PGBOUNCER_PORT", "6433")), 15)
    elif action == "manage":
        plan = Plan()
        code = subprocess.run(  # noqa: S603 (the operator's own arguments)
            [sys.executable, "manage.py", *sys.argv[2:]],
            cwd=ROOT,
            env=plan.env(through_bouncer=False),
            check=False,
        ).returncode
        sys.exit(code)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
