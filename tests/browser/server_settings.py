"""Settings of the real server and worker processes the browser journeys drive.

tests.settings plus the address the processes are reachable at: the Sandbox sends
its webhooks there and Earshot calls the Sandbox's API there, over real HTTP.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import SOCIAL_APPS

SITE_URL = os.environ["EARSHOT_LIVE_URL"]
SOCIAL_APPS["sandbox"] = {**SOCIAL_APPS["sandbox"], "base_url": f"{SITE_URL}/sandbox"}
