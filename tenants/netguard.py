"""The SSRF guard for every outbound call to a host a tenant chose (DESIGN.md §7).

Outbound webhooks (helpdesk/webhooks/) and Mastodon instances (social/instance_apps,
social/connectors/mastodon) both send Earshot's workers, which sit inside the
deployment's network, to an address typed by a workspace admin. Both go through
this module:

- `check_host` resolves a host name once, through `resolve_host`, and refuses it
  unless every address is public: loopback, private, link-local (cloud metadata
  included), unspecified, multicast, reserved, IPv4-mapped and tunnelled IPv6
  addresses are refused, as are numeric hosts in non-canonical forms (`2130706433`,
  `0x7f.1`, `127.1`) and `localhost` names. It returns the address to connect to.
- The connection is then pinned to that address: `PinnedBackend` connects only to
  the addresses checked before the request (one request, with a deadline), and
  `GuardedBackend`, for a pooled client, checks each host when it opens a
  connection and connects to the address it checked. Either way a second DNS answer
  (rebinding) is never used, while the request keeps the host name for the Host
  header, TLS SNI and the certificate check.

Scheme, port and URL shape are each caller's rules; this module is about where the
connection goes. settings.WEBHOOKS_ALLOWED_PRIVATE_NETS lets listed networks
through anyway, for webhooks and Mastodon alike: it is empty in production, and
tests list 127.0.0.1/32 for their loopback fakes.
"""

import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpcore
import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
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
# Start the message of a connection refused at connect time (GuardedBackend), so
# callers can tell it from a network failure (`refusal_in`); a name that does not
# resolve may resolve later, an address that is not public will not.
REFUSED_PREFIX = "Refused: "
UNRESOLVED_PREFIX = "Unresolved: "


class UrlRefused(Exception):
    """Earshot may not connect there; the message says why, for the person.
    `transient` when the name did not resolve (it may later)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class Refusal:
    """The guard's refusal found behind a connection error (`refusal_in`)."""

    message: str
    transient: bool


@dataclass(frozen=True)
class Policy:
    """Whom a refusal addresses: `public_only` ends every refusal message
    ("Earshot delivers webhooks to public internet addresses only.")."""

    public_only: str


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in resolver order (the guard's one resolver).

    Raises OSError (socket.gaierror) when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_host(
    host: str, port: int, policy: Policy, *, resolve: Resolver | None = None
) -> str:
    """The public address to connect to for `host` (a name or an IP literal, lower
    case, no brackets), resolved once. Raises UrlRefused."""
    literal = check_literal(host, policy)
    if literal is not None:
        return literal
    try:
        addresses = (resolve or resolve_host)(host, port)
    except (OSError, UnicodeError):
        raise UrlRefused(f"Earshot could not resolve {host}.", transient=True) from None
    if not addresses:
        raise UrlRefused(f"Earshot could not resolve {host}.", transient=True)
    for address in addresses:
        ip = ip_literal(address)
        if ip is None or address_refusal(ip):
            raise UrlRefused(
                f"{host} resolves to an address that is not public (loopback, "
                f"private, link-local or reserved). {policy.public_only}"
            )
    return addresses[0]


def check_literal(host: str, policy: Policy) -> str | None:
    """The checks that need no DNS: refuse loopback names, non-canonical numbers and
    refused IP literals. Returns the address when `host` is an IP literal, else None
    (the name still has to be resolved and checked). Raises UrlRefused."""
    check_host_name(host, policy)
    literal = ip_literal(host)
    if literal is None:
        return None
    reason = address_refusal(literal)
    if reason:
        raise UrlRefused(f"{host} is {reason}. {policy.public_only}")
    return str(literal)


def check_host_name(host: str, policy: Policy) -> None:
    """Refuse loopback names and numeric hosts a resolver would read as addresses."""
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise UrlRefused(f"{host} is a loopback name. {policy.public_only}")
    if ip_literal(host) is None and _NUMERIC_HOST.match(name):
        try:
            socket.inet_aton(name)
        except OSError:
            return
        # 2130706433, 0x7f.1 or 127.1: resolvers read these as addresses.
        raise UrlRefused("Write an IP address as four decimal numbers (a.b.c.d).")


def address_refusal(address: IPAddress) -> str | None:
    """Why Earshot may not connect to `address` (a phrase), or None when it may."""
    if any(address in network for network in allowed_private_networks()):
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


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def allowed_private_networks() -> list[IPNetwork]:
    return [
        ipaddress.ip_network(cidr, strict=False)
        for cidr in settings.WEBHOOKS_ALLOWED_PRIVATE_NETS
    ]


def refusal_in(error: BaseException) -> Refusal | None:
    """The guard's refusal behind `error` (raised by GuardedBackend and wrapped by
    httpx and the caller's own errors), or None for any other failure."""
    seen: BaseException | None = error
    while seen is not None:
        text = str(seen)
        for prefix, transient in ((REFUSED_PREFIX, False), (UNRESOLVED_PREFIX, True)):
            if text.startswith(prefix):
                return Refusal(text.removeprefix(prefix), transient)
        seen = seen.__cause__ or seen.__context__
    return None


# --- Pinned connections ---------------------------------------------------------


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; one context serves every request.
    return httpx.create_ssl_context(trust_env=False)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport over a network backend that decides where to connect."""

    def __init__(
        self, backend: httpcore.NetworkBackend, *, max_connections: int = 1
    ) -> None:
        super().__init__(verify=ssl_context(), trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            retries=0,
            network_backend=backend,
        )


class PinnedBackend(httpcore.NetworkBackend):
    """Connects only to the address checked for each host, within one deadline."""

    def __init__(self, pins: dict[str, str], deadline: float) -> None:
        self.pins = pins
        self.deadline = deadline
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = self.pins.get(host)
        if address is None:
            raise httpcore.ConnectError(f"{host} was not checked by the SSRF guard")
        stream = self.inner.connect_tcp(
            address,
            port,
            timeout=bounded(timeout, self.deadline),
            local_address=local_address,
            socket_options=socket_options,
        )
        return DeadlineStream(stream, self.deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("guarded connections never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class GuardedBackend(httpcore.NetworkBackend):
    """For a pooled client: each new connection checks its host (`check_host`, one
    resolution) and connects to the address it checked; a refusal is a ConnectError
    whose message starts with REFUSED_PREFIX (UNRESOLVED_PREFIX for a name that did
    not resolve). The client's timeouts apply."""

    def __init__(self, policy: Callable[[], Policy]) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            address = check_host(host.lower(), port, self.policy())
        except UrlRefused as refused:
            prefix = UNRESOLVED_PREFIX if refused.transient else REFUSED_PREFIX
            raise httpcore.ConnectError(prefix + refused.message) from None
        return self.inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("guarded connections never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def guarded_transport(
    policy: Callable[[], Policy], *, max_connections: int = 20
) -> httpx.HTTPTransport:
    """A pooled transport whose every connection goes through the guard."""
    return PinnedTransport(GuardedBackend(policy), max_connections=max_connections)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self.inner = inner
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, timeout=bounded(timeout, self.deadline))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, timeout=bounded(timeout, self.deadline))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.start_tls(
            ssl_context,
            server_hostname=server_hostname,
            timeout=bounded(timeout, self.deadline),
        )
        return DeadlineStream(stream, self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


def bounded(timeout: float | None, deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpcore.ReadTimeout("the request took longer than its total timeout")
    return remaining if timeout is None else min(timeout, remaining)
