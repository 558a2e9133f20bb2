"""The URL rules of outbound webhooks, on top of the shared SSRF guard.

A webhook URL is chosen by a tenant, and Earshot's workers sit inside the
deployment's network, so every URL is checked before it is saved and again before
every delivery:

- the scheme is https (plain http only with settings.WEBHOOKS_ALLOW_HTTP, for
  development), the port is an allowed one (443 by default), and there are no
  credentials in the URL (here);
- the host is a public address, resolved once, and the delivery connects to that
  checked address (tenants/netguard.py, shared with Mastodon instances, and
  helpdesk/webhooks/transport.py), so a DNS answer that changes between check and
  connect (rebinding) is never used.

Redirects are not followed at all (the transport treats a 3xx as a failure).
settings.WEBHOOKS_ALLOWED_PRIVATE_NETS lets listed networks through anyway; it is
empty in production, and tests list 127.0.0.1/32 for their loopback receivers.
"""

from dataclasses import dataclass

import httpx
from django.conf import settings

from tenants import netguard
from tenants.netguard import UrlRefused

__all__ = ["Target", "UrlRefused", "check_url", "parse_url", "resolve_host"]

URL_MAX_LENGTH = 2000
DEFAULT_PORTS = {"https": 443, "http": 80}
POLICY = netguard.Policy(
    public_only="Earshot delivers webhooks to public internet addresses only."
)


@dataclass(frozen=True)
class Target:
    """A checked URL: the host as the HTTP client will see it, and where to connect."""

    url: str
    host: str
    port: int
    address: str


def resolve_host(host: str, port: int) -> list[str]:
    """The guard's resolver (tests replace this name with a fake DNS)."""
    return netguard.resolve_host(host, port)


def check_url(url: str) -> Target:
    """Check `url` completely (syntax, scheme, port, host, resolved addresses).

    Returns the target with the address to connect to; raises UrlRefused.
    """
    parsed, host, port = parse_url(url)
    address = netguard.check_host(host, port, POLICY, resolve=resolve_host)
    return Target(url=str(parsed), host=host, port=port, address=address)


def parse_url(url: str) -> tuple[httpx.URL, str, int]:
    """The parsed URL, its host (ASCII, as the client sends it) and port.

    Checks everything that needs no DNS; raises UrlRefused.
    """
    url = url.strip()
    if not url:
        raise UrlRefused("Enter the URL that should receive the webhooks.")
    if len(url) > URL_MAX_LENGTH:
        raise UrlRefused(f"Keep the URL under {URL_MAX_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise UrlRefused("This is not a valid URL.") from None
    _check_scheme(parsed.scheme)
    if parsed.userinfo:
        raise UrlRefused(
            "Leave credentials out of the URL; check the Earshot-Signature header "
            "on your side instead."
        )
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise UrlRefused("The URL needs a host name.")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    if port not in _allowed_ports(parsed.scheme):
        raise UrlRefused(f"Use the standard port ({_port_list(parsed.scheme)}).")
    netguard.check_host_name(host, POLICY)
    return parsed, host, port


def _check_scheme(scheme: str) -> None:
    if scheme == "https":
        return
    if scheme == "http" and settings.WEBHOOKS_ALLOW_HTTP:
        return
    raise UrlRefused("Use an https:// URL.")


def _allowed_ports(scheme: str) -> set[int]:
    ports = set(settings.WEBHOOKS_ALLOWED_PORTS)
    if scheme == "http":
        ports.add(DEFAULT_PORTS["http"])
    return ports


def _port_list(scheme: str) -> str:
    return ", ".join(str(port) for port in sorted(_allowed_ports(scheme)))
