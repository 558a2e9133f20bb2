"""The cyclic garbage collector's set-up for a long-running web or worker process.

A web or worker process loads Django, DRF, Celery, the app's modules, its URLconf
and serializers and the language model: about 180,000 container objects that live
as long as the process. CPython's full collections walk every one of them (about
0.1 s of CPU each on this machine, one every few thousand API writes), though
none of them is ever garbage. Frozen
after start (`gc.freeze()`), they sit in the permanent generation, which no
collection walks; the requests' own young objects are collected as before.

Settings (read with defaults, so a settings module without them keeps these):

- `GC_FREEZE_AT_START` (default True): collect once, then freeze what is left.
  An object frozen here and later dropped is still freed by its reference count;
  only a reference cycle among frozen objects is never reclaimed, and nothing
  allocated after the freeze is frozen, so that is bounded by what the start made.
- `GC_GEN0_THRESHOLD` (default None: CPython's own, 2,000 in 3.13): the net
  container allocations between two young collections. Raising it to 10,000
  made fewer, larger young collections for the same CPU per API write, so the
  default leaves it alone.
"""

import gc
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class CollectorSetUp:
    """What `tune_collector` did: the objects frozen and the thresholds now."""

    frozen: int
    threshold: tuple[int, int, int]


def tune_collector() -> CollectorSetUp:
    """Apply GC_FREEZE_AT_START and GC_GEN0_THRESHOLD to this process's collector.

    Call it once the process has loaded what it keeps for its life: at the end of
    the ASGI module, or in a Celery worker before it forks its pool (the children
    inherit the frozen generation, and their pages holding those objects are not
    written by later collections, so they stay shared). Calling it again freezes
    what was allocated since, which is harmless but pointless.

    Raises ImproperlyConfigured when GC_GEN0_THRESHOLD is not a positive integer
    (0 would switch automatic collection off).
    """
    threshold = getattr(settings, "GC_GEN0_THRESHOLD", None)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise ImproperlyConfigured("GC_GEN0_THRESHOLD must be an integer or None.")
        if threshold < 1:
            raise ImproperlyConfigured("GC_GEN0_THRESHOLD must be at least 1.")
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
    if getattr(settings, "GC_FREEZE_AT_START", True):
        # Garbage of the start (import-time cycles) is freed now, not frozen.
        gc.collect()
        gc.freeze()
    return CollectorSetUp(frozen=gc.get_freeze_count(), threshold=gc.get_threshold())
