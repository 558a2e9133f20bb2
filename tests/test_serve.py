"""`make serve`: the Procfile's processes and the environment scripts/serve.py gives
them (the runtime role through pgbouncer, the owner directly, the broker by env),
and pgbouncer's generated configuration."""

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from helpdesk.pgbouncer import PgbouncerConfig

ROOT = Path(__file__).resolve().parent.parent


def _serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve", ROOT / "scripts/serve.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(
        line.split(": ", 1) for line in lines if line and not line.startswith("#")
    )


def test_procfile_runs_the_topology() -> None:
    processes = _procfile()
    assert sorted(processes) == [
        "beat",
        "default",
        "delivery",
        "inbound",
        "pgbouncer",
        "web",
    ]
    assert "--workers $WEB_CONCURRENCY" in processes["web"]
    queues = {
        name: re.findall(r" -Q (\S+)", command)
        for name, command in processes.items()
        if " worker " in command
    }
    assert queues == {
        "inbound": ["inbound"],
        "delivery": ["delivery"],
        "default": ["default"],
    }


def test_runtime_role_goes_through_pgbouncer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGBOUNCER_PORT", "6499")
    monkeypatch.setenv("EARSHOT_BROKER", "rabbitmq")
    serve = _serve()
    monkeypatch.setattr(serve, "RUN", tmp_path)
    env = serve.Plan().env()
    assert env["DATABASE_URL"] == "postgresql://earshot_app@127.0.0.1:6499/earshot"
    assert env["MIGRATOR_DATABASE_URL"] == (
        "postgresql://earshot_owner@127.0.0.1:5432/earshot"
    )
    assert env["DATABASE_PGBOUNCER"] == "1"
    assert env["CELERY_BROKER_URL"] == "amqp://guest:guest@127.0.0.1:5672//"
    assert env["WEB_PORT"] == "8000"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")
    assert len(env["SECRET_KEY"]) >= 50
    assert (tmp_path / "secret_key").read_text() == env["SECRET_KEY"]
    direct = serve.Plan().env(through_bouncer=False)
    assert direct["DATABASE_URL"] == "postgresql://earshot_app@127.0.0.1:5432/earshot"
    assert direct["DATABASE_PGBOUNCER"] == "0"


def test_an_unknown_broker_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARSHOT_BROKER", "kafka")
    with pytest.raises(SystemExit) as exit_info:
        _serve().Plan()
    assert str(exit_info.value) == (
        "serve: EARSHOT_BROKER must be redis or rabbitmq, not kafka"
    )


def test_pgbouncer_config_is_transaction_mode(tmp_path: Path) -> None:
    config = PgbouncerConfig(
        directory=tmp_path,
        listen_port=6499,
        databases=("earshot",),
        users={"earshot_app": 'pa"ss'},
    )
    ini = config.render()
    assert "pool_mode = transaction\n" in ini
    assert "earshot = host=127.0.0.1 port=5432 dbname=earshot\n" in ini
    assert "auth_type = scram-sha-256\n" in ini
    assert "query_wait_timeout = 10\n" in ini
    assert config.userlist() == '"earshot_app" "pa""ss"\n'
    trusting = PgbouncerConfig(
        directory=tmp_path, listen_port=6499, databases=("e",), users={"a": None}
    )
    assert "auth_type = trust\n" in trusting.render()
