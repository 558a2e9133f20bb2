"""Cost per message of reading an inbound message: language detection (py3langid)
and sentiment/anger (VADER, textblob-fr's lexicon, textblob-de's lexicon).

Both run inline on the ingest path (helpdesk.services.inbound.customer_message),
once per message. The budget they eat into (DESIGN.md section 6): 1,000 inbound
items per second per worker, i.e. 1,000 us per item for everything. The baseline
from the same run is the old word-list scorer (tests/helpdesk/legacy_sentiment.py).
Messages: the 192 hand-written care messages of tests/helpdesk/data.
"""

import json
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path
from time import perf_counter, perf_counter_ns, thread_time_ns

import pytest

from helpdesk import sentiment
from helpdesk.language import detect_language
from tests.helpdesk.legacy_sentiment import score_sentiment as legacy_score
from tests.perf.report import Figure, percentile, print_report
from tests.perf.test_listening_bench import machine_facts

pytestmark = pytest.mark.bench

DATA = Path(__file__).parents[1] / "helpdesk" / "data" / "care_messages.jsonl"
ROUNDS = 20
ITEM_BUDGET_US = 1000.0  # 1,000 items/s per worker


def per_call_us(
    function: Callable[[str], object], texts: list[str], rounds: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and thread CPU time of each call, in microseconds."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        for text in texts:
            start, start_cpu = perf_counter_ns(), thread_time_ns()
            function(text)
            cpu.append((thread_time_ns() - start_cpu) / 1000)
            wall.append((perf_counter_ns() - start) / 1000)
    return wall, cpu


def _score_in(language: str, text: str) -> float:
    return sentiment._score(text, language)


def test_cost_per_message_of_language_and_sentiment() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    texts = [row["text"] for row in rows]
    started = perf_counter()
    sentiment.read_message.cache_clear()
    sentiment.read_message(texts[0])  # loads py3langid and VADER
    for language in ("fr", "de"):
        sentiment._pattern(language)("")  # loads the two lexicons
    load_s = perf_counter() - started

    uncached = sentiment.read_message.__wrapped__
    per_call_us(uncached, texts, 1)  # warm
    _legacy_wall, legacy_cpu = per_call_us(legacy_score, texts, ROUNDS)
    _detect_wall, detect_cpu = per_call_us(detect_language, texts, ROUNDS)
    read_wall, read_cpu = per_call_us(uncached, texts, ROUNDS)
    by_language = {}
    for language in ("en", "fr", "de", "es"):
        mine = [row["text"] for row in rows if row["language"] == language]
        _wall, cpu = per_call_us(partial(_score_in, language), mine, ROUNDS)
        by_language[language] = statistics.fmean(cpu)
    read_mean = statistics.fmean(read_cpu)

    print_report(
        "reading one inbound message: language, sentiment, anger",
        machine_facts(),
        [
            f"{len(texts)} care messages (en, fr, es, de; 9-17 words) x {ROUNDS} "
            f"rounds; models and lexicons loaded once per process in "
            f"{load_s:.2f} s",
            f"the whole reading takes {read_mean / ITEM_BUDGET_US:.1%} of the "
            "1,000 us an item may take at 1,000 items/s per worker",
        ],
        [
            Figure(
                "baseline: old word list, mean (CPU)",
                statistics.fmean(legacy_cpu),
                "us",
            ),
            Figure(
                "language detection, mean (CPU)", statistics.fmean(detect_cpu), "us"
            ),
            Figure("language detection, p99 (CPU)", percentile(detect_cpu, 99), "us"),
            Figure("scoring en (VADER), mean (CPU)", by_language["en"], "us"),
            Figure("scoring fr (textblob-fr), mean (CPU)", by_language["fr"], "us"),
            Figure(
                "scoring de (textblob-de lexicon), mean (CPU)", by_language["de"], "us"
            ),
            Figure(
                "scoring es (emoji + old words), mean (CPU)", by_language["es"], "us"
            ),
            Figure("whole reading, mean (CPU)", read_mean, "us"),
            Figure("whole reading, p99 (CPU)", percentile(read_cpu, 99), "us"),
            Figure("whole reading, p50 (wall clock)", percentile(read_wall, 50), "us"),
            Figure(
                "messages read per second, one core (CPU)",
                1e6 / read_mean,
                "/s",
            ),
        ],
    )
    assert read_mean > 0
