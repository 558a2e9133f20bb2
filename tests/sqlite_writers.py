"""Concurrent writers on a SQLite file, configured by helpdesk.settings as the demo is.

Run by tests/test_sqlite_demo.py in a subprocess (the suite's own settings are
PostgreSQL): `python -m tests.sqlite_writers THREADS WRITES` with DATABASE_URL set to
a sqlite:/// file. Each thread has its own connection (Django's are per thread) and
runs WRITES transactions that read before they write, as the services do (the
pattern that fails at once with "database is locked" under SQLite's default
deferred transactions). Prints one JSON line: the errors, the rows that landed, and
the connection's journal mode and options.
"""

import json
import sys
import threading
from collections import Counter

import django


def main(threads: int, writes: int) -> None:
    django.setup()
    from django.db import connection, connections, transaction

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE demo_write (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "writer INTEGER NOT NULL, n INTEGER NOT NULL, seen INTEGER NOT NULL)"
        )
    start = threading.Barrier(threads)
    errors: list[str] = []

    def write(writer: int) -> None:
        try:
            start.wait()
            for n in range(writes):
                try:
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.execute("SELECT COUNT(*) FROM demo_write")
                        seen = cursor.fetchone()[0]
                        cursor.execute(
                            "INSERT INTO demo_write (writer, n, seen) "
                            "VALUES (%s, %s, %s)",
                            [writer, n, seen],
                        )
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}")
        finally:
            connections.close_all()

    workers = [threading.Thread(target=write, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with connection.cursor() as cursor:
        cursor.execute("SELECT writer, n FROM demo_write")
        rows = cursor.fetchall()
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
    per_writer = Counter(writer for writer, _ in rows)
    print(  # noqa: T201 - the result for the parent test
        json.dumps(
            {
                "errors": errors,
                "rows": len(rows),
                "distinct": len(set(rows)),
                "per_writer": [per_writer[i] for i in range(threads)],
                "journal_mode": journal_mode,
                "options": connection.settings_dict["OPTIONS"],
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
