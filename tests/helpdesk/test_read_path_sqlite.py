"""The read path's SQLite branch (the demo): tag names, contact names, the page
by ids and `?include=` answer the same as on PostgreSQL (tests/sqlite_read_path)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# The suite's environment points at PostgreSQL and Redis; the demo has neither.
SUITE_ONLY = ("MIGRATOR_DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG")


def test_the_read_path_answers_on_sqlite(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in SUITE_ONLY}
    env |= {
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "EARSHOT_DEMO": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
    }

    result = subprocess.run(
        [sys.executable, "-m", "tests.sqlite_read_path"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    selector = outcome["selector"]
    assert len(selector["ids"]) == 5
    assert selector["tags"] == [["bags", "vip"], ["bags"], [], [], []]
    assert selector["contact_ids"] == [True] * 5
    assert all(name for name in selector["contacts"])
    assert outcome["api_ids"] == selector["ids"]
    assert outcome["api_tags"] == selector["tags"]
    assert outcome["api_contacts"] == selector["contacts"]
    assert outcome["detail_tags"] == ["bags", "vip"]
    assert outcome["detail_messages_equal_thread"] is True
    assert outcome["detail_messages"] > 0
    assert outcome["detail_notes"] == []
