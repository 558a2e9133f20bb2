"""Settings of the fault suite's server, worker and beat processes.

tests.settings (the test database as the runtime role) plus: the stack's address
(the Sandbox sends its webhooks there and Earshot calls the Sandbox's API there),
the private Redis and broker in the environment, and the Sandbox's webhook task on
a queue of its own, consumed by a worker that plays the platform and is never
killed: a fault in Earshot's workers must not also lose the platform's deliveries.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CELERY_TASK_ROUTES, SOCIAL_APPS

SITE_URL = os.environ["EARSHOT_LIVE_URL"]
SOCIAL_APPS["sandbox"] = {**SOCIAL_APPS["sandbox"], "base_url": f"{SITE_URL}/sandbox"}
CELERY_TASK_ROUTES = {
    **CELERY_TASK_ROUTES,
    "sandbox.deliver_webhook": {"queue": os.environ["EARSHOT_SANDBOX_QUEUE"]},
}
SANDBOX_SLOW_POST_SECONDS = float(os.environ.get("SANDBOX_SLOW_POST_SECONDS", "0"))
