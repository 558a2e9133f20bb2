"""What PostgreSQL spends per request: each phase of scripts/peer_profile.py,
with pg_stat_statements and the server's CPU read around it.

  PG_HOSTPORT=127.0.0.1:5433 WRAP="$PWD/.venv/bin/python scripts/peer_pg_cost.py" \
      scripts/peer_profile.sh --count 3000 --phases create

Run it against a private cluster started with
`shared_preload_libraries=pg_stat_statements`, `pg_stat_statements.track=all` and
`track_io_timing=on` (the extension created in its `postgres` database), and
nothing else using that cluster: the CPU is read from /proc for the postmaster and
every process under it (backends, WAL writer, checkpointer), including children
that exited during the phase. Around each measured phase ("<phase> asgi x<n>"),
the statistics are reset, and afterwards each statement of the profiled database
is printed per request: calls, execution and planning time, rows, shared blocks
hit/read/dirtied/written and WAL bytes, followed by the server's CPU per request
(user + system) and the WAL written per request.

Read with care: a statement's execution time includes its lock waits (with
--clients above 1, the tenant's event counter row is waited for inside the
write's last statement), nested statements (the opening function's, the
foreign-key checks at COMMIT) are counted both on their own and in their caller,
and COMMIT itself (the deferred checks aside, the WAL flush) shows only in the
server's CPU.
"""

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _cluster_cpu(postmaster: int) -> float:
    """Seconds of CPU of the postmaster, its live children and its reaped ones."""
    fields = _stat(postmaster)
    # After the ")": state is index 0, utime 11, stime 12, cutime 13, cstime 14.
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            child = _stat(int(entry))
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(child[1]) == postmaster:  # ppid
            total += int(child[11]) + int(child[12])
    return total / TICK


STATEMENTS = """
select s.query, s.calls, s.total_exec_time, s.total_plan_time, s.plans, s.rows,
       s.shared_blks_hit, s.shared_blks_read, s.shared_blks_dirtied,
       s.shared_blks_written, s.wal_records, s.wal_bytes, s.wal_fpi
from pg_stat_statements s join pg_database d on d.oid = s.dbid
where d.datname = %s
order by s.total_exec_time + s.total_plan_time desc
"""


class PgCost:
    def __init__(self) -> None:
        hostport = os.environ.get("PG_HOSTPORT", "127.0.0.1:5432")
        host, port = hostport.rsplit(":", 1)
        self.database = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
        self.conn = psycopg.connect(
            host=host,
            port=int(port),
            user="postgres",
            dbname="postgres",
            autocommit=True,
        )
        directory = self._one("show data_directory")
        with open(os.path.join(directory, "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        self.cpu = 0.0
        self.wal = 0

    def _one(self, sql: str) -> Any:
        row = self.conn.execute(sql).fetchone()
        if row is None:
            raise SystemExit(f"no row from {sql}")
        return row[0]

    def _wal(self) -> int:
        return int(self._one("select pg_current_wal_lsn() - '0/0'"))

    def start(self) -> None:
        self.conn.execute("select pg_stat_statements_reset()")
        self.wal = self._wal()
        self.cpu = _cluster_cpu(self.postmaster)

    def stop(self, label: str, count: int) -> None:
        cpu = _cluster_cpu(self.postmaster) - self.cpu
        wal = self._wal() - self.wal
        rows = self.conn.execute(STATEMENTS, (self.database,)).fetchall()
        print(f"--- PostgreSQL per request, {label} ({count} requests)")  # noqa: T201
        print(  # noqa: T201
            f"{'calls':>6} {'exec us':>8} {'plan us':>8} {'plans':>6} {'rows':>6} "
            f"{'hit':>6} {'read':>5} {'dirt':>5} {'writ':>5} {'walrec':>6} "
            f"{'walB':>7} {'fpi':>5}  statement"
        )
        exec_total = plan_total = 0.0
        for (
            query,
            calls,
            exec_ms,
            plan_ms,
            plans,
            nrows,
            hit,
            read,
            dirtied,
            written,
            walrec,
            walbytes,
            fpi,
        ) in rows:
            exec_total += exec_ms
            plan_total += plan_ms
            if calls < count / 20:
                continue
            text = " ".join(query.split())
            print(  # noqa: T201
                f"{calls / count:6.2f} {exec_ms * 1e3 / count:8.1f} "
                f"{plan_ms * 1e3 / count:8.1f} {plans / count:6.2f} "
                f"{nrows / count:6.2f} {hit / count:6.1f} {read / count:5.2f} "
                f"{dirtied / count:5.2f} {written / count:5.2f} "
                f"{walrec / count:6.2f} {float(walbytes) / count:7.0f} "
                f"{fpi / count:5.2f}  {text[:220]}"
            )
        print(  # noqa: T201
            f"server CPU {cpu / count * 1e6:.0f} us/request; statements' exec "
            f"{exec_total * 1e3 / count:.0f} us + plan {plan_total * 1e3 / count:.0f}"
            f" us; WAL {wal / count:.0f} bytes/request",
            flush=True,
        )


def main() -> None:
    # WRAP is given "<python> scripts/peer_profile.py <options>".
    args = sys.argv[1:]
    while not args[0].endswith(".py"):
        args = args[1:]
    script = args[0]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    import peer_profile

    cost = PgCost()
    phase = peer_profile._phase

    def measured(label: str, make: Callable[[], Any], count: int, *args: Any) -> Any:
        if " asgi " not in label:
            return phase(label, make, count, *args)
        time.sleep(0.2)  # the warm-up's commits flushed
        cost.start()
        results = phase(label, make, count, *args)
        cost.stop(label, count)
        return results

    peer_profile._phase = measured  # type: ignore[assignment]
    peer_profile.main(args[1:])


if __name__ == "__main__":
    main()
