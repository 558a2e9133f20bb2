"""Domain errors of webhook endpoints (HelpdeskError: the API answers 400 per field)."""

from helpdesk.exceptions import HelpdeskError


class WebhookUrlRefused(HelpdeskError):
    """The SSRF guard refused the URL (scheme, port, host or resolved address)."""

    code = "webhook_url_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


class WebhookEndpointInvalid(HelpdeskError):
    """Unknown event types, a description too long, too many endpoints."""

    code = "webhook_endpoint_invalid"


class WebhookEndpointDisabled(HelpdeskError):
    """The action needs an active endpoint (enable it first)."""

    code = "webhook_endpoint_disabled"
    http_status = 409
