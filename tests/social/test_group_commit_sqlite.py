"""The group commit's INSERT ... ON CONFLICT DO NOTHING RETURNING on SQLite (the
demo's database), through the ASGI fast path, in a subprocess with the demo's
settings (tests/social/sqlite_group_commit.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The suite's environment points at PostgreSQL and Redis; the demo has neither.
SUITE_ONLY = ("MIGRATOR_DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG")
ACCEPTED = [200, {"status": "accepted"}]


def test_a_group_is_stored_and_replayed_on_sqlite(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in SUITE_ONLY}
    env |= {
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "EARSHOT_DEMO": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
    }

    result = subprocess.run(
        [sys.executable, "-m", "tests.social.sqlite_group_commit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    malformed = [400, {"error": "not a valid sandbox delivery: 'event_id'"}]
    assert outcome["first"] == [ACCEPTED, ACCEPTED, ACCEPTED, ACCEPTED, malformed]
    # Replayed: the stored copies are still unprocessed (no worker runs here), so
    # they are queued again; the malformed one is a duplicate.
    duplicate = [200, {"status": "duplicate"}]
    assert outcome["again"] == [ACCEPTED, ACCEPTED, ACCEPTED, ACCEPTED, duplicate]
    bodies = outcome["bodies"]
    assert outcome["rows"] == [
        [bodies[0], "received"],
        [bodies[1], "received"],
        [bodies[2], "received"],
        [bodies[4], "malformed"],
    ]
