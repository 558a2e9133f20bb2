"""What every benchmark prints: the machine it ran on and its figures against the
budgets in DESIGN.md section 6. A missed budget is reported, never a failure."""

import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from django.conf import settings

from tests.helpdesk.live import REDIS_LAYER_URL


def conninfo(alias: str = "default", *, dbname: str | None = None) -> str:
    """libpq conninfo of a configured database (the runtime role for `default`)."""
    db = settings.DATABASES[alias]
    return psycopg.conninfo.make_conninfo(
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        user=db["USER"],
        dbname=dbname or db["NAME"],
    )


def backend_ns() -> int:
    """CPU time (ns) the default connection's PostgreSQL backend has used so far
    (/proc/<pid>/schedstat; PostgreSQL on this machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_facts(postgres_conninfo: str) -> str:
    with psycopg.connect(postgres_conninfo) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    postgres = row[0] if row else "unknown"
    redis_version = redis.Redis.from_url(REDIS_LAYER_URL).info("server")[
        "redis_version"
    ]
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, PostgreSQL {postgres}, "
        f"Redis {redis_version}; load average {os.getloadavg()[0]:.2f} "
        "(the machine is shared: other processes compete for its cores)"
    )


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0-100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Figure:
    name: str
    measured: float
    unit: str
    target: float | None = None
    higher_is_better: bool = False

    def line(self) -> str:
        text = f"  {self.name:<44} {self.measured:>10.2f} {self.unit}"
        if self.target is None:
            return text
        met = (
            self.measured >= self.target
            if self.higher_is_better
            else self.measured < self.target
        )
        sign = ">=" if self.higher_is_better else "<"
        verdict = "met" if met else "MISSED"
        return f"{text}   target {sign} {self.target:g} {self.unit}: {verdict}"


def latency_figures(
    label: str, seconds: Sequence[float], targets: dict[int, float] | None = None
) -> list[Figure]:
    """p50/p95/p99/max in ms of `seconds`, with the ms targets given per percentile."""
    targets = targets or {}
    ms = [s * 1000 for s in seconds]
    figures = [
        Figure(f"{label} p{pct}", percentile(ms, pct), "ms", targets.get(pct))
        for pct in (50, 95, 99)
    ]
    figures.append(Figure(f"{label} max", max(ms), "ms"))
    figures.append(Figure(f"{label} mean", statistics.fmean(ms), "ms"))
    return figures


def print_report(
    title: str, facts: str, notes: Sequence[str], figures: Sequence[Figure]
) -> None:
    lines = [
        "",
        f"=== bench: {title} ===",
        facts,
        *(f"  {note}" for note in notes),
        *(figure.line() for figure in figures),
    ]
    print("\n".join(lines))  # noqa: T201 - a benchmark's output is its report
