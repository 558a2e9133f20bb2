"""ASGI entry point: HTTP to Django; websockets via the exact Origin check
(helpdesk/websocket_guard.py), session auth and routing, with every refusal closed
with its 44xx code so the page can tell it from a dropped connection. Once all of
it is loaded, what it loaded is frozen out of the garbage collector's way
(helpdesk/gc_tuning.py)."""

import os
from importlib import import_module

# Django's ASGIHandler with the whole request in one hop to a reused thread.
from helpdesk.asgi_handler import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from social.webhook_asgi import WebhookFastPath  # noqa: E402

# The demo (DEBUG) serves its own static files; production serves them in front
# (whitenoise or the proxy) from STATIC_ROOT after collectstatic. Webhook
# deliveries are acknowledged before Django's middleware (social/webhook_asgi.py),
# which also sets their request id and observes each acknowledgement (`observe`:
# helpdesk.observability.asgi.WebhookAckMetrics for the POSTs to /hooks/ it passes).
http_app = WebhookFastPath(
    ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app,
    observe=True,
)
# helpdesk.web_server's workers answer the usual delivery with it below uvicorn's
# per-request task (the same checks, store and answer bytes).
direct_http = http_app

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from helpdesk.routing import websocket_urlpatterns  # noqa: E402
from helpdesk.startup import refuse_unsafe_database  # noqa: E402
from helpdesk.websocket_guard import CloseWithCode, OriginGuard  # noqa: E402

refuse_unsafe_database()

from helpdesk.sentiment import warm  # noqa: E402

# An API-channel push records its message in this process: load the language model
# and lexicons at start, not on the first push (about 1-3 s).
warm()

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": CloseWithCode(
            OriginGuard(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)

from helpdesk.gc_tuning import tune_collector  # noqa: E402

# The URLconf, and through it every view and serializer, would otherwise be
# imported by the first request, after the freeze: import it now so that it is
# frozen with the rest.
import_module(settings.ROOT_URLCONF)
tune_collector()
