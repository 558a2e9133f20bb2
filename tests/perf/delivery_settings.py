"""Settings of the delivery benchmark's worker: tests.settings plus the batch size
and pool width from the environment (the benchmark runs the one-reply-per-task
path and the batched one side by side)."""

import os

from tests.settings import *  # noqa: F403

DELIVERY_BATCH_SIZE = int(os.environ.get("EARSHOT_DELIVERY_BATCH_SIZE", "100"))
DELIVERY_CONCURRENCY = int(os.environ.get("EARSHOT_DELIVERY_CONCURRENCY", "32"))
