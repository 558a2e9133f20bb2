"""The SSRF guard for outbound webhook URLs (DESIGN.md §7, tenancy.md §8 test 25).

A webhook URL is chosen by a tenant, and Earshot's workers sit inside the
deployment's network, so every URL is checked before it is saved and again before
every delivery:

- the scheme is https (plain http only with settings.WEBHOOKS_ALLOW_HTTP, for
  development), the port is an allowed one (443 by default), and there are no
  credentials in the URL;
- the host is a public address: loopback, private, link-local (cloud metadata
  included), unspecified, multicast, reserved, IPv4-mapped and tunnelled IPv6
  addresses are refused, as are numeric hosts in non-canonical forms
  (`2130706433`, `0x7f.1`, `127.1`) and `localhost` names;
- a name is resolved once, through `resolve_host`, and every address it resolves
  to must pass; the delivery then connects to that checked address
  (helpdesk/webhooks/transport.py), so a DNS answer that changes between check
  and connect (rebinding) is never used.

Redirects are not followed at all (the transport treats a 3xx as a failure).
`settings.WEBHOOKS_ALLOWED_PRIVATE_NETS` lets listed networks through anyway; it is
empty in production, and tests list 127.0.0.1/32 for their loopback receivers.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX_LENGTH = 2000
DEFAULT_PORTS = {"https": 443, "http": 80}
# Addresses of cloud metadata services, named so the refusal says what they are.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("168.63.129.16"),  # Azure wire server (a public address)
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
NAT64_NETWORKS = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")
_PUBLIC_ONLY = "Earshot delivers webhooks to public internet addresses only."


class UrlRefused(Exception):
    """The URL may not receive webhooks; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """A checked URL: the host as the HTTP client will see it, and where to connect."""

    url: str
    host: str
    port: int
    address: str


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in resolver order (the guard's one resolver).

    Raises OSError (socket.gaierror) when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str) -> Target:
    """Check `url` completely (syntax, scheme, port, host, resolved addresses).

    Returns the target with the address to connect to; raises UrlRefused.
    """
    parsed, host, port = parse_url(url)
    literal = _ip_literal(host)
    if literal is not None:
        reason = address_refusal(literal)
        if reason:
            raise UrlRefused(f"{host} is {reason}. {_PUBLIC_ONLY}")
        return Target(url=str(parsed), host=host, port=port, address=str(literal))
    try:
        addresses = resolve_host(host, port)
    except (OSError, UnicodeError):
        raise UrlRefused(f"Earshot could not resolve {host}.") from None
    if not addresses:
        raise UrlRefused(f"Earshot could not resolve {host}.")
    for address in addresses:
        ip = _ip_literal(address)
        if ip is None or address_refusal(ip):
            raise UrlRefused(
                f"{host} resolves to an address that is not public (loopback, "
                f"private, link-local or reserved). {_PUBLIC_ONLY}"
            )
    return Target(url=str(parsed), host=host, port=port, address=addresses[0])


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
    _check_host_name(host)
    return parsed, host, port


def address_refusal(address: IPAddress) -> str | None:
    """Why webhooks may not go to `address` (a phrase), or None when they may."""
    if any(address in network for network in _allowed_private_networks()):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address.sixtofour is not None or address.teredo is not None:
            return "an IPv6 tunnel address"
        if any(address in network for network in NAT64_NETWORKS):
            return "an IPv6 translation address"
    for refused, phrase in (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private or not address.is_global, "a private address"),
    ):
        if refused:
            return phrase
    return None


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


def _check_host_name(host: str) -> None:
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise UrlRefused(f"{host} is a loopback name. {_PUBLIC_ONLY}")
    if _ip_literal(host) is None and _NUMERIC_HOST.match(name):
        try:
            socket.inet_aton(name)
        except OSError:
            return
        # 2130706433, 0x7f.1 or 127.1: resolvers read these as addresses.
        raise UrlRefused("Write an IP address as four decimal numbers (a.b.c.d).")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _allowed_private_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(cidr, strict=False)
        for cidr in settings.WEBHOOKS_ALLOWED_PRIVATE_NETS
    ]
