"""The side-by-side table from bench.py's JSON summary (scripts/peer_side_by_side.sh).

  python scripts/peer_report.py summary.json [--title TEXT] > table.md

Rows: each measured phase, the peer's and Earshot's requests/s and p50/p95, the
ratio, and the 1-minute load average when each side's phase ended. Then Earshot's
delivery settle time, the baseline endpoint (ping) and Earshot's create as a share
of it, and the checks (errors, items per page, thread length).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PHASES = (
    ("create_ticket", "create (inbound message)"),
    ("add_followup", "reply"),
    ("list_open_page1", "list open, page 1"),
    ("get_ticket", "get conversation + thread"),
)
PEER, EARSHOT, PING = "django-helpdesk", "earshot", "earshot-ping"
READ_TARGET = 50.0  # issue 12: reads at T=5000 >= 50x the peer's
WRITE_TARGET = 3.0  # issue 12: create and reply >= 3x the peer's


def _rate(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("per_sec") is None:
        return "-"
    return f"{stats['per_sec']:.1f}/s"


def _latency(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("p50_ms") is None:
        return "-"
    return f"{stats['p50_ms']:.0f} / {stats['p95_ms']:.0f}"


def _load(stats: dict[str, Any] | None) -> str:
    return "-" if not stats else f"{stats.get('load1_end', '-')}"


def _ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> float | None:
    if not ours or not theirs or not ours.get("per_sec") or not theirs.get("per_sec"):
        return None
    return float(ours["per_sec"]) / float(theirs["per_sec"])


def phase_table(results: dict[str, dict[str, Any]], tickets: int) -> list[str]:
    peer, ours = results.get(PEER, {}), results.get(EARSHOT, {})
    lines = [
        "| phase | django-helpdesk | p50 / p95 ms | Earshot | p50 / p95 ms "
        "| Earshot / peer | target | load1 at end (peer / Earshot) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, title in PHASES:
        theirs, mine = peer.get(key), ours.get(key)
        ratio = _ratio(mine, theirs)
        shown = "-" if ratio is None else f"**{ratio:.2f}x**"
        if key in {"create_ticket", "add_followup"}:
            target = f"≥ {WRITE_TARGET:.0f}x, p95 < 50 ms"
        else:
            target = f"≥ {READ_TARGET:.0f}x at T=5000" if tickets >= 5000 else ""
        lines.append(
            f"| {title} | {_rate(theirs)} | {_latency(theirs)} | {_rate(mine)} "
            f"| {_latency(mine)} | {shown} | {target} "
            f"| {_load(theirs)} / {_load(mine)} |"
        )
    return lines


def delivery_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    reply = results.get(EARSHOT, {}).get("add_followup")
    if not reply:
        return []
    settle = reply.get("settle_s")
    if settle is None:
        return ["- Earshot replies: no settle wait recorded."]
    span = float(reply["wall_s"]) + float(settle)
    return [
        f"- Earshot reply delivery (Celery, 1 worker): the queue was worked off "
        f"{settle:.1f} s after the reply phase ended; {reply['ok']} replies over "
        f"{span:.1f} s from the phase's start ≈ {reply['ok'] / span:.1f} delivered/s."
    ]


def baseline_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    ping = results.get(PING)
    if not ping:
        return ["- Baseline (`GET ping/`): not measured (the endpoint answered 404)."]
    create = ping.get("create_ticket")
    ours = results.get(EARSHOT, {}).get("create_ticket")
    share = _ratio(ours, create)
    lines = [
        f"- Baseline `GET ping/` (token authenticated in the workspace, constant "
        f"answer), same server: {_rate(create)}, p50 / p95 {_latency(create)} ms, "
        f"load1 {_load(create)}.",
    ]
    if share is not None:
        lines.append(
            f"- Earshot's create is **{100 * share:.0f}%** of the baseline "
            "(aim: ≥ 50%)."
        )
    others = ", ".join(
        f"{title} phase {_rate(ping.get(key))} (p50 / p95 {_latency(ping.get(key))} ms)"
        for key, title in PHASES[1:]
        if ping.get(key)
    )
    if others:
        lines.append(f"- The baseline in the other phases: {others}.")
    return lines


def _errors(result: dict[str, Any] | None) -> dict[str, int]:
    return {
        key: result[key]["errors"]
        for key, _ in PHASES
        if result and key in result and result[key].get("errors")
    }


def check_lines(results: dict[str, dict[str, Any]], followups: int) -> list[str]:
    lines = []
    for label, result in results.items():
        errors = _errors(result)
        if label == PING:  # pings have no pages or threads to check
            lines.append(f"- {label}: errors {errors or 'none'}")
            continue
        pages = result.get("list_open_page1", {}).get("items_per_page")
        threads = result.get("get_ticket", {}).get("thread_len")
        lines.append(
            f"- {label}: errors {errors or 'none'}; items per page {pages}; "
            f"thread length {threads} (expect [{followups + 1}])"
        )
    return lines


def render(summary: dict[str, Any], title: str) -> str:
    work = summary["workload"]
    results: dict[str, dict[str, Any]] = summary["results"]
    lines = [
        f"## {title}",
        "",
        f"T={work['tickets']} F={work['followups']} N={work['concurrency']} "
        f"R={work['reads']} seed={work['seed']}; {summary.get('label', '')}",
        "",
        *phase_table(results, int(work["tickets"])),
        "",
        *delivery_lines(results),
        *baseline_lines(results),
        *check_lines(results, int(work["followups"])),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summary", type=Path)
    parser.add_argument("--title", default="Earshot beside django-helpdesk")
    args = parser.parse_args(argv)
    summary = json.loads(args.summary.read_text())
    sys.stdout.write(render(summary, args.title))


if __name__ == "__main__":
    main(sys.argv[1:])
