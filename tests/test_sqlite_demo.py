"""The SQLite demo takes concurrent writes (Sandbox traffic beside an API push)
without "database is locked": helpdesk.settings opens SQLite in WAL mode with
IMMEDIATE transactions and a busy timeout.

The suite's settings are PostgreSQL, so the writers run in a subprocess with the
demo's settings (helpdesk.settings, EARSHOT_DEMO=1) on a temporary database file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS, WRITES = 8, 25
# The suite's environment points at PostgreSQL and Redis; the demo has neither.
SUITE_ONLY = ("MIGRATOR_DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG")


def test_concurrent_writers_all_land_without_database_is_locked(
    tmp_path: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if key not in SUITE_ONLY}
    env |= {
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "EARSHOT_DEMO": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
    }

    result = subprocess.run(
        [sys.executable, "-m", "tests.sqlite_writers", str(THREADS), str(WRITES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["errors"] == []
    assert outcome["rows"] == THREADS * WRITES
    assert outcome["distinct"] == THREADS * WRITES
    assert outcome["per_writer"] == [WRITES] * THREADS
    assert outcome["journal_mode"] == "wal"
    assert outcome["options"] == {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }


def test_rollups_kept_on_sqlite_equal_their_rebuild(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in SUITE_ONLY}
    env |= {
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "EARSHOT_DEMO": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
    }

    result = subprocess.run(
        [sys.executable, "-m", "tests.sqlite_rollups"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["conversations"] == 32  # a seeded week (helpdesk.demo_history)
    assert all(count > 0 for count in outcome["rows"].values()), outcome["rows"]
    assert outcome["differ"] == []
