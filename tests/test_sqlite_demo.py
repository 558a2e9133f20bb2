"""The SQLite demo takes concurrent writes (Sandbox traffic beside an API push)
without "database is locked": helpdesk.settings opens SQLite in WAL mode with
IMMEDIATE transactions and a busy timeout.

The suite's settings are PostgreSQL, so the writers run in a subprocess with the
demo's settings (helpdesk.settings, EARSHOT_DEMO=1) on a temporary database file.
"""

from pathlib import Path

from tests.demo_subprocess import run_on_demo_sqlite

THREADS, WRITES = 8, 25


def test_concurrent_writers_all_land_without_database_is_locked(
    tmp_path: Path,
) -> None:
    outcome = run_on_demo_sqlite(
        "tests.sqlite_writers", tmp_path, str(THREADS), str(WRITES), timeout=60
    )
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
    outcome = run_on_demo_sqlite("tests.sqlite_rollups", tmp_path)
    assert outcome["conversations"] == 32  # a seeded week (helpdesk.demo_history)
    assert all(count > 0 for count in outcome["rows"].values()), outcome["rows"]
    assert outcome["differ"] == []


def test_any_of_filters_with_an_in_list_on_sqlite(tmp_path: Path) -> None:
    """The batched ingest's lookups (bulkrows.any_of, `= ANY` of an array on
    PostgreSQL) work on the demo's SQLite, which binds no list: before, every
    batch of the demo's Sandbox traffic failed with "type 'list' is not
    supported" and its events were retried for ever."""
    outcome = run_on_demo_sqlite("tests.sqlite_any_of", tmp_path, timeout=120)
    first, second, third = outcome["made"]
    assert outcome["by_id"] == [first, third]
    assert outcome["by_text"] == [first, second, third]
    assert outcome["none"] == []
