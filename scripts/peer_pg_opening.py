"""What PostgreSQL spends on a token request's opening statement, alone.

  scripts/peer_profile.sh --phases ping --count 10     # makes the database
  DATABASE_URL=postgresql://<app>@127.0.0.1:5434/<db> DJANGO_SETTINGS_MODULE=\
  helpdesk.settings SECRET_KEY=... PYTHONPATH=. .venv/bin/python \
      scripts/peer_pg_opening.py --state /tmp/earshot_profile_workspace.json \
      [--function earshot_open_api --function my_variant] [--calls 3000]

One connection (prepared statements, as the web workers use them) runs
`BEGIN; SELECT ... FROM <function>(slug, digest, now, a day ago); COMMIT` in
blocks of --calls, the functions alternating block by block, and prints the
backend's CPU per call (user + system from /proc, so run it on the server's
machine) for each block and the median per function. A day-old staleness bound
keeps the token's touch out of the loop. A variant is any function with
`earshot_open_api`'s signature and result, created beside it by hand.

On a shared machine the CPU of a block moves by 10-30%; instruction counts do
not. For those, run the private cluster under valgrind (`valgrind
--tool=callgrind --trace-children=yes postgres -D <dir>`), run this script
twice per function with `--rounds 1` and two --calls (say 100 and 600), and
divide the difference of the backends' totals (`callgrind_annotate
--inclusive=yes`, PostgresMain) by the difference of the calls: the warm-up
(connection start, the first plans) cancels out. On PostgreSQL 15 this gave
about 402k instructions per call for `earshot_open_api` with pg_stat_statements
loaded; the commit that added this script says where they go.
"""

import argparse
import hashlib
import json
import os
import statistics
from datetime import UTC, datetime, timedelta

import django

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--state", required=True, help="peer_profile.sh's STATE")
    parser.add_argument("--function", action="append", dest="functions")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    options = parser.parse_args()
    django.setup()
    import psycopg

    from tenants.opening import API_PARTS, _statement

    with open(options.state) as f:
        workspace = json.load(f)
    digest = hashlib.sha256(workspace["token"].encode()).hexdigest()
    now = datetime.now(UTC)
    arguments = [workspace["slug"], digest, now, now - timedelta(days=1)]
    functions = options.functions or ["earshot_open_api"]
    sql = {name: _statement(name, 4, API_PARTS, "default")[0] for name in functions}
    conn = psycopg.connect(os.environ["DATABASE_URL"], prepare_threshold=0)
    pid = conn.info.backend_pid
    for name in functions:  # the plans cached, the statements prepared
        for _ in range(20):
            with conn.transaction():
                conn.execute(sql[name], arguments).fetchone()
    spent: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(options.rounds):
        for name in functions if round_ % 2 == 0 else functions[::-1]:
            before = _cpu(pid)
            for _ in range(options.calls):
                with conn.transaction():
                    conn.execute(sql[name], arguments).fetchone()
            spent[name].append(1e6 * (_cpu(pid) - before) / options.calls)
    conn.close()
    for name, figures in spent.items():
        raw = " ".join(f"{figure:.0f}" for figure in figures)
        print(  # noqa: T201
            f"{name}: backend CPU median {statistics.median(figures):.1f} us a call "
            f"(BEGIN, the statement, COMMIT); blocks {raw}"
        )
    with open("/proc/loadavg") as f:
        print("load", f.read().strip())  # noqa: T201


if __name__ == "__main__":
    main()
