"""Run a script module with the demo's settings (SQLite) and read its outcome.

The suite's settings are PostgreSQL and Redis, and Django is set up once per
process, so the SQLite checks run `python -m <module>` in a subprocess with
helpdesk.settings, EARSHOT_DEMO=1 and a temporary database file. The module prints
one JSON object as its last line: the outcome the test asserts on.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The suite's environment points at PostgreSQL and Redis; the demo has neither.
SUITE_ONLY = ("MIGRATOR_DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG")


def run_on_demo_sqlite(
    module: str, tmp_path: Path, *args: str, timeout: int = 120
) -> dict[str, Any]:
    """Run `python -m module *args` on a fresh demo database; its last JSON line."""
    env = {key: value for key, value in os.environ.items() if key not in SUITE_ONLY}
    env |= {
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "EARSHOT_DEMO": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome
