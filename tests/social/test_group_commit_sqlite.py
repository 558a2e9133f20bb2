"""The group commit's INSERT ... ON CONFLICT DO NOTHING RETURNING on SQLite (the
demo's database), through the ASGI fast path, in a subprocess with the demo's
settings (tests/social/sqlite_group_commit.py)."""

from pathlib import Path

from tests.demo_subprocess import run_on_demo_sqlite

ACCEPTED = [200, {"status": "accepted"}]


def test_a_group_is_stored_and_replayed_on_sqlite(tmp_path: Path) -> None:
    outcome = run_on_demo_sqlite(
        "tests.social.sqlite_group_commit", tmp_path, timeout=180
    )
    error = "not a valid sandbox delivery: the delivery has no 'event_id'"
    malformed = [400, {"error": error}]
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
