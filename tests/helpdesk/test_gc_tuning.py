"""helpdesk.gc_tuning: the collector set-up a web or worker process applies at start,
in this process and in a real ASGI import and `celery worker` process."""

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings

from helpdesk.gc_tuning import CollectorSetUp, tune_collector
from tests.helpdesk.live import BROKER_URL, ROOT, worker_subprocess


@pytest.fixture
def collector() -> Iterator[None]:
    """This process's collector as it was, back after the test."""
    threshold = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    yield
    gc.set_threshold(*threshold)
    if gc.get_freeze_count() != frozen_before:
        gc.unfreeze()
        if frozen_before:
            gc.freeze()


def _tracked(marker: object) -> bool:
    return any(candidate is marker for candidate in gc.get_objects())


def test_freezes_what_is_loaded_and_keeps_the_thresholds_by_default(
    collector: None, settings: Settings
) -> None:
    for name in ("GC_FREEZE_AT_START", "GC_GEN0_THRESHOLD"):
        if hasattr(settings, name):
            delattr(settings, name)
    threshold = gc.get_threshold()
    loaded = [object()]
    assert _tracked(loaded)

    result = tune_collector()

    assert not _tracked(loaded)
    assert result == CollectorSetUp(frozen=gc.get_freeze_count(), threshold=threshold)
    assert gc.get_threshold() == threshold
    assert result.frozen > 0


def test_sets_the_young_threshold_and_keeps_the_older_ones(
    collector: None, settings: Settings
) -> None:
    settings.GC_FREEZE_AT_START = False
    settings.GC_GEN0_THRESHOLD = 7000
    _, older, oldest = gc.get_threshold()
    frozen = gc.get_freeze_count()
    loaded = [object()]

    result = tune_collector()

    assert gc.get_threshold() == (7000, older, oldest)
    # Nothing was frozen: the count can only fall (a frozen object freed since).
    assert result.threshold == (7000, older, oldest)
    assert result.frozen <= frozen
    assert gc.get_freeze_count() <= frozen
    assert _tracked(loaded)
    assert _tracked(loaded)


@pytest.mark.parametrize("value", [0, -5, "2000", 2000.0, True])
def test_refuses_a_threshold_that_is_not_a_positive_integer(
    collector: None, settings: Settings, value: Any
) -> None:
    settings.GC_FREEZE_AT_START = True
    settings.GC_GEN0_THRESHOLD = value
    threshold = gc.get_threshold()
    frozen = gc.get_freeze_count()
    loaded = [object()]

    with pytest.raises(ImproperlyConfigured, match="GC_GEN0_THRESHOLD"):
        tune_collector()

    assert gc.get_threshold() == threshold
    # Nothing was frozen: the count can only fall (a frozen object freed since).
    assert gc.get_freeze_count() <= frozen
    assert _tracked(loaded)


# Prints the collector's state once helpdesk.asgi is imported, as a uvicorn worker
# imports it, with the settings given in argv[1] (JSON) applied first.
ASGI_START = """
import gc, json, sys
import django
django.setup()
from django.conf import settings
for name, value in json.loads(sys.argv[1]).items():
    setattr(settings, name, value)
import helpdesk.asgi
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "threshold": list(gc.get_threshold()),
    "urlconf_loaded": settings.ROOT_URLCONF in sys.modules,
    "tracked_after": len(gc.get_objects()),
}))
"""


def _asgi_start(configured: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", ASGI_START, json.dumps(configured)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.django_db(transaction=True)
def test_the_asgi_app_freezes_itself_and_its_urlconf_at_import() -> None:
    state = _asgi_start({"GC_FREEZE_AT_START": True, "GC_GEN0_THRESHOLD": 6000})

    assert state["threshold"][0] == 6000
    assert state["urlconf_loaded"] is True
    # Everything loaded is frozen; what is left tracked is the few objects made
    # after the freeze (this script's own).
    assert state["frozen"] > 100_000
    assert state["tracked_after"] < 100


@pytest.mark.django_db(transaction=True)
def test_the_asgi_app_leaves_the_collector_alone_when_configured_so() -> None:
    state = _asgi_start({"GC_FREEZE_AT_START": False, "GC_GEN0_THRESHOLD": None})

    assert state["frozen"] == 0
    assert state["threshold"] == [2000, 10, 10]  # CPython 3.13's own
    assert state["urlconf_loaded"] is True
    assert state["tracked_after"] > 100_000


# A prefork worker that reports its pool child's collector, with the settings
# CONFIGURED (JSON) applied before the worker starts.
WORKER_START = """
import gc, json, sys
import django
django.setup()
from django.conf import settings
for name, value in json.loads(CONFIGURED).items():
    setattr(settings, name, value)
from celery.signals import worker_process_init
from helpdesk.celery import app

@worker_process_init.connect
def report(**_):
    sys.__stdout__.write("GCSTATE " + json.dumps({
        "frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold()),
    }) + "\\n")
    sys.__stdout__.flush()

app.worker_main(sys.argv[1:])
"""


def _worker_child_state(tmp_path: Path, configured: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": BROKER_URL,
        "EARSHOT_TEST_EAGER": "0",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "worker.log"
    script = WORKER_START.replace("CONFIGURED", repr(json.dumps(configured)))
    with worker_subprocess(env, log, name="gc", pool="prefork", script=script):
        deadline = time.monotonic() + 30
        while b"GCSTATE " not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
    lines = [
        line for line in log.read_text().splitlines() if line.startswith("GCSTATE ")
    ]
    assert len(lines) == 1, log.read_text()
    result: dict[str, Any] = json.loads(lines[0].removeprefix("GCSTATE "))
    return result


@pytest.mark.django_db(transaction=True)
def test_a_prefork_worker_child_inherits_the_frozen_start(tmp_path: Path) -> None:
    state = _worker_child_state(
        tmp_path, {"GC_FREEZE_AT_START": True, "GC_GEN0_THRESHOLD": 5000}
    )

    assert state["threshold"][0] == 5000
    assert state["frozen"] > 100_000


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_the_collector_as_it_is_when_configured_so(
    tmp_path: Path,
) -> None:
    state = _worker_child_state(
        tmp_path, {"GC_FREEZE_AT_START": False, "GC_GEN0_THRESHOLD": None}
    )

    assert state == {"frozen": 0, "threshold": [2000, 10, 10]}
