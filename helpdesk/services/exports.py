"""CSV exports of the care reports (R9): the aggregates, and one row per
conversation.

Both are generators of text chunks, meant for a streamed response: a chunk is
produced only when the previous one was sent, so an export holds at most
CHUNK_ROWS rows in memory whatever its range (the conversation rows come from a
selector that iterates a server-side cursor). The first line is the header row.

Cells: numbers as digits (a fraction with at most six decimals), booleans as
`true`/`false`, a missing value as an empty cell, timestamps in ISO 8601 (UTC).
A text cell that a spreadsheet would read as a formula (it starts with `=`, `+`,
`-`, `@`, a tab or a carriage return) is prefixed with `'`.

**aggregates.csv** is one long table, one figure per row, in these columns:
- `section`: `summary`, `day`, `agent` or `fairness`;
- `key`: the day (`2026-03-02`), the agent's user id or the follower band
  (`small`, `medium`, `large`); empty for the summary and the fairness ratio;
- `label`: the agent's name; empty elsewhere;
- `metric`: the figure's name as in the JSON API (`response_rate`,
  `first_response_p50`, ...); a breakdown adds its value after a dot
  (`inbound_by_platform.x`);
- `value`: the figure for the period;
- `previous`, `change`: summary rows with `compare` on: the figure for the
  previous period, and value - previous.
Durations are seconds, rates and shares fractions of 1 (helpdesk.reports).

**conversations.csv** has one row per conversation opened in the period, oldest
first, in the columns of CONVERSATION_COLUMNS (documented there).
"""

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from itertools import islice
from typing import Any

CHUNK_ROWS = 500

AGGREGATE_COLUMNS = (
    "section",
    "key",
    "label",
    "metric",
    "value",
    "previous",
    "change",
)

# The conversation export's columns. All but `agent` are the keys of the same
# name in helpdesk.reports.report_conversation_rows.
CONVERSATION_COLUMNS = (
    "conversation_id",  # Earshot's id of the conversation
    "brand_id",
    "account_id",  # the social account it came through (empty: none)
    "platform",
    "origin",  # mention, direct_message, comment, ...
    "follower_band",  # small (<100), medium (100-10k), large (>10k)
    "opened_at",  # the customer's first message (UTC)
    "first_response_seconds",  # calendar seconds to the first response
    "first_response_business_seconds",  # the same, in business hours
    "first_response_breached",  # the first response missed its target
    "next_response_breached",  # some next response missed its target
    "resolution_seconds",  # calendar seconds to the last resolution
    "resolution_business_seconds",
    "resolution_breached",
    "resolved_at",
    "agent_id",  # the user id of the first responder (empty: unanswered)
    "agent",  # their name (empty when they are no longer a member)
)

# What a spreadsheet would start a formula with.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """The write target csv.writer needs; hands the formatted line back."""

    def write(self, value: str) -> str:
        return value


def cell(value: Any) -> str:
    """One value as a CSV cell (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header line, then the rows' lines, CHUNK_ROWS lines per chunk."""
    writer = csv.writer(_Line(), lineterminator="\r\n")
    yield writer.writerow(header)
    iterator = iter(rows)
    while batch := list(islice(iterator, CHUNK_ROWS)):
        yield "".join(writer.writerow([cell(v) for v in row]) for row in batch)


def conversation_csv(
    rows: Iterable[Mapping[str, Any]], *, agent_names: Mapping[int, str]
) -> Iterator[str]:
    """conversations.csv from report_conversation_rows' rows, lazily (a chunk is
    read only when the one before was taken). `agent_names` maps user ids to the
    names shown in the `agent` column."""
    return csv_chunks(
        CONVERSATION_COLUMNS,
        (
            [
                *(row[column] for column in CONVERSATION_COLUMNS[:-1]),
                agent_names.get(row["agent_id"], "") if row["agent_id"] else "",
            ]
            for row in rows
        ),
    )


def aggregate_csv(
    *,
    summary: Mapping[str, Any],
    days: Iterable[Mapping[str, Any]],
    agents: Iterable[Mapping[str, Any]],
    fairness: Mapping[str, Any],
) -> Iterator[str]:
    """aggregates.csv from the report selectors' results (see the module docstring).

    `summary` is report_summary's result (its `start` and `end` are not figures);
    `previous` and `change` may be None (compare off), leaving those cells empty.
    `days` are report_timeseries' rows, `agents` report_agents' (named by
    `display_name`; the email is not a figure) and `fairness` report_fairness'.
    """
    return csv_chunks(
        AGGREGATE_COLUMNS,
        _aggregate_rows(summary=summary, days=days, agents=agents, fairness=fairness),
    )


def _figures(row: Mapping[str, Any], skip: set[str]) -> Iterator[tuple[str, Any]]:
    """(metric, value) of a row, breakdowns flattened to `name.value`."""
    for metric, value in row.items():
        if metric in skip:
            continue
        if isinstance(value, Mapping):
            for part, figure in value.items():
                yield f"{metric}.{part}", figure
        else:
            yield metric, value


def _aggregate_rows(
    *,
    summary: Mapping[str, Any],
    days: Iterable[Mapping[str, Any]],
    agents: Iterable[Mapping[str, Any]],
    fairness: Mapping[str, Any],
) -> Iterator[list[Any]]:
    previous = summary.get("previous") or {}
    change = summary.get("change") or {}
    for metric, value in _figures(summary["period"], {"start", "end"}):
        yield [
            "summary",
            "",
            "",
            metric,
            value,
            previous.get(metric),
            change.get(metric),
        ]
    for day in days:
        for metric, value in _figures(day, {"date"}):
            yield ["day", day["date"], "", metric, value, None, None]
    for agent in agents:
        key, label = agent["agent_id"], agent["display_name"]
        for metric, value in _figures(agent, {"agent_id", "display_name", "email"}):
            yield ["agent", key, label, metric, value, None, None]
    for band, figures in fairness["bands"].items():
        for metric, value in _figures(figures, set()):
            yield ["fairness", band, "", metric, value, None, None]
    for metric in ("ratio", "flagged"):
        yield ["fairness", "", "", metric, fairness[metric], None, None]
