"""The SQLite demo takes concurrent writes (Sandbox traffic beside an API push)
without "database is locked": helpdesk.settings opens SQLite in WAL mode with
IMMEDIATE transactions and a busy timeout.

The suite's settings are PostgreSQL, so the writers run in a subprocess with the
demo's settings (helpdesk.settings, EARSHOT_DEMO=1) on a temporary database file.
"""

from pathlib import Path
from typing import Any

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


def test_batched_ingest_of_the_demos_traffic_on_sqlite(tmp_path: Path) -> None:
    """The demo's Sandbox deliveries go through the real batched ingest on SQLite
    (the Celery task its embedded worker runs, social.batch_ingest,
    inbound_batch, bulkrows) and leave exact rows; the same batch again, run or
    stored anew, changes nothing. Before b864272 every batch failed there and
    nothing of it was recorded."""
    outcome = run_on_demo_sqlite("tests.sqlite_batch_ingest", tmp_path, timeout=180)
    posts = outcome["posts"]
    alice, bob = posts["alice"], posts["bob"]
    bob_old, bob_root, waiting = posts["bob_old"], posts["bob_root"], posts["waiting"]
    alice_root, tagged = posts["alice_root"], posts["tagged"]
    untagged = posts["untagged"]
    alice_thread, bob_thread = f"{alice}@{alice_root}", f"{bob}@{bob_root}"
    old_thread, alice_in_bob = f"{bob}@{bob_old}", f"{alice}@{bob_root}"
    dm_thread = f"{bob}@{posts['dm_thread']}"
    done = ["processed", 1, "", 0]
    malformed = ["malformed", 0, "the delivery has no 'id'", 0]

    def recorded(messages: list[tuple[str, str, str, bool]]) -> dict[str, Any]:
        """The rows of `messages` (external id, author, conversation, whether it
        opens it), recorded in this order: each its message.created event's
        seq, then its conversation's event."""
        events = []
        for n, (external_id, _author, conversation, opens) in enumerate(messages):
            seq = 2 * n + 1
            kind = "conversation.created" if opens else "conversation.updated"
            events += [
                [seq, "message.created", seq, conversation, external_id],
                [seq + 1, kind, seq + 1, conversation, None],
            ]
        return {
            "messages": sorted(
                [external_id, author, conversation, 2 * n + 1]
                for n, (external_id, author, conversation, _o) in enumerate(messages)
            ),
            "events": events,
        }

    round0 = outcome["round0"]
    assert round0["deliveries"] == [done, done]
    assert round0["rows"] == {
        "contacts": ["Bob B"],
        "identities": [[bob, "bob", "Bob B", 340]],
        "conversations": [[old_thread, "open", 1, [bob_old]]],
        **recorded([(bob_old, bob, old_thread, True)]),
        "waiting": [waiting],
    }

    batch = outcome["batch"]
    assert batch["result"] == ["SUCCESS", "processed"]
    # Alice's post, Bob's, his private message, Alice's post again, her tagged
    # reply, the malformed delivery, Bob's round-0 post again, her untagged
    # reply: one batch.
    assert batch["deliveries"] == [done, done, done, done, done, malformed, done, done]
    assert batch["batches"] == 1
    rows: dict[str, Any] = {
        "contacts": ["Alice A", "Bob B"],
        "identities": sorted(
            # Bob's follower count as his batch's post gave it.
            [[alice, "alice", "Alice A", 12], [bob, "bob", "Bob B", 345]]
        ),
        "conversations": sorted(
            [
                [old_thread, "open", 1, [bob_old]],
                [alice_thread, "open", 3, [alice_root, tagged, untagged]],
                [bob_thread, "open", 1, [bob_root]],
                [alice_in_bob, "open", 1, [waiting]],
                [dm_thread, "open", 1, [posts["dm"]]],
            ]
        ),
        # Round 0's item; the batch's set-based items in arrival order, then the
        # reply that waited for Bob's thread, then the untagged reply (alone).
        **recorded(
            [
                (bob_old, bob, old_thread, True),
                (alice_root, alice, alice_thread, True),
                (bob_root, bob, bob_thread, True),
                (posts["dm"], bob, dm_thread, True),
                (tagged, alice, alice_thread, False),
                (waiting, alice, alice_in_bob, True),
                (untagged, alice, alice_thread, False),
            ]
        ),
        "waiting": [],
    }
    assert batch["rows"] == rows

    # The same task again finds its deliveries processed; stored again under new
    # event ids, every item is a replay.
    assert outcome["again"] == {
        "result": ["SUCCESS", "processed"],
        "deliveries": batch["deliveries"],
        "rows": rows,
    }
    assert outcome["replayed"] == {
        "result": ["SUCCESS", "processed"],
        "deliveries": batch["deliveries"],
        "batches": 1,
        "rows": rows,
    }

    poisoned = outcome["poisoned"]
    refused = "the database refused the value"
    assert poisoned["group"] == ["SUCCESS", "1 failed"]
    assert poisoned["alone"] == ["FAILURE", f"DataError({refused!r})"]
    # The refused item's task ran once and retried ten times.
    assert poisoned["deliveries"] == [done, ["failed", 0, refused, 11]]
    fresh_thread = f"{bob}@{posts['fresh']}"
    assert poisoned["rows"] == {
        **rows,
        "conversations": sorted(
            [*rows["conversations"], [fresh_thread, "open", 1, [posts["fresh"]]]]
        ),
        "messages": sorted(
            [*rows["messages"], [posts["fresh"], bob, fresh_thread, 15]]
        ),
        "events": [
            *rows["events"],
            [15, "message.created", 15, fresh_thread, posts["fresh"]],
            [16, "conversation.created", 16, fresh_thread, None],
        ],
    }
