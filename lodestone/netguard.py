"""The one outbound URL guard, shared by webhook delivery and input fetching.

Only http and https. The host is resolved at connect time and every address it resolves
to must be public (or allowed by OUTBOUND_ALLOW_CIDRS: a CIDR, any port, or a CIDR or
address with one port, `127.0.0.1:8080`, `[::1]:8080`, `10.0.0.0/8:443`); the connection
then goes to the address that was checked, so a DNS answer cannot change between check and use.
Redirects are followed by hand, each hop checked the same way, up to a limit.
"""

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOWED_SCHEMES = ("http", "https")
REDIRECTS = (301, 302, 303, 307, 308)
_IETF_PROTOCOL_V4 = ipaddress.ip_network("192.0.0.0/24")


class OutboundRefused(ValueError):
    """The URL, or an address it resolves to, is not one Lodestone may call."""


def _embedded_v4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo, NAT64), else ip."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip.teredo:
            return ip.teredo[1]
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


@dataclass(frozen=True)
class Allowed:
    """Non-public addresses outbound calls may reach anyway: a network, on one port or any."""

    network: Network
    port: int | None = None

    def admits(self, ip: IPAddress, port: int | None) -> bool:
        return ip.version == self.network.version and ip in self.network and (self.port is None or self.port == port)


def check_address(ip: IPAddress, allow: Sequence[Allowed] = (), port: int | None = None) -> None:
    """Refuse a non-public address unless an allow entry admits it (on this port, for an
    entry that names one; an entry with a port admits nothing when the port is not known)."""
    target = _embedded_v4(ip)
    if any(rule.admits(target, port) for rule in allow):
        return
    # Public IPv6 unicast is 2000::/3; Python 3.11's is_global misses the rest of the reserved
    # space (IPv4-compatible ::a.b.c.d, local-use NAT64 64:ff9b:1::/48) and site-local fec0::/10.
    v6_not_public = target.version == 6 and (target.is_reserved or target.is_site_local)
    if target.version == 4 and target in _IETF_PROTOCOL_V4:  # 3.11 counts only part of it as private
        raise OutboundRefused(f"address {ip} is not public (IETF protocol assignments)")
    if not target.is_global or target.is_multicast or v6_not_public:
        raise OutboundRefused(f"address {ip} is not public (loopback, private, link-local or reserved)")


def check_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, ValueError) as e:
        raise OutboundRefused(f"invalid URL {str(url)[:200]!r}: {e}") from e
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise OutboundRefused(f"scheme {parsed.scheme or '(none)'!r} is not allowed: only http and https")
    if not parsed.host:
        raise OutboundRefused(f"URL {str(url)[:200]!r} has no host")
    if parsed.userinfo:
        raise OutboundRefused("URLs with credentials in them are not allowed")
    return parsed


_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def refused_before_sending(url: str, allow: Sequence[Allowed] = ()) -> str | None:
    """Why every call to url will be refused, when that is known without resolving a name: a
    URL check_url refuses, or a host that is an address (or `localhost`, RFC 6761) no allow
    entry admits on the URL's port. None: it may be sent (a name is checked when it resolves)."""
    try:
        parsed = check_url(url)
    except OutboundRefused as e:
        return str(e)
    host = parsed.host.rstrip(".").lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if host == "localhost" or host.endswith(".localhost"):
        candidates: Sequence[IPAddress] = _LOOPBACK
    else:
        try:
            candidates = [ipaddress.ip_address(host)]
        except ValueError:
            return None
    reasons = []
    for ip in candidates:
        try:
            check_address(ip, allow, port)
            return None
        except OutboundRefused as e:
            reasons.append(str(e))
    return f"{reasons[0]}, and no OUTBOUND_ALLOW_CIDRS entry admits it on port {port}" if allow else reasons[0]


async def checked_address(host: str, port: int, allow: Sequence[Allowed], unresolved: type[Exception]) -> str:
    """The address to connect to for host: every address it resolves to is checked."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        # Not a refusal: DNS can fail for a while, so callers may retry this.
        raise unresolved(f"cannot resolve {host!r}: {e}") from e
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for ip in addresses:
        check_address(ip, allow, port)
    return str(addresses[0])


class _Guarded:
    """A network backend that connects only to checked addresses, over an inner backend (of
    httpcore, or of httpcore2 for the openai SDK's httpx2)."""

    def __init__(self, allow: Sequence[Allowed], inner: Any, unresolved: type[Exception]) -> None:
        self.allow, self._inner, self._unresolved = allow, inner, unresolved

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        address = await checked_address(host, port, self.allow, self._unresolved)
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> Any:
        raise OutboundRefused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedBackend(_Guarded, httpcore.AsyncNetworkBackend):
    def __init__(self, allow: Sequence[Allowed]) -> None:
        super().__init__(allow, httpcore.AnyIOBackend(), httpx.ConnectError)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow: Sequence[Allowed], **limits: Any) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(), network_backend=GuardedBackend(allow), **limits
        )


_WITH_PORT = re.compile(r"^\[?(?P<net>[^\[\]]+?)\]?(?P<prefix>/[0-9]+)?:(?P<port>[0-9]{1,5})$")


def parse_allow(entries: Iterable[str]) -> list[Allowed]:
    """OUTBOUND_ALLOW_CIDRS entries: `10.0.0.0/8`, `127.0.0.1:8080`, `[::1]:8080`, `10.0.0.0/8:443`."""
    allowed = []
    for entry in entries:
        entry = entry.strip()
        match = _WITH_PORT.match(entry) if entry.count(":") == 1 or entry.startswith("[") else None
        if match is None:
            allowed.append(Allowed(ipaddress.ip_network(entry, strict=False)))
            continue
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ValueError(f"outbound allow entry {entry!r}: port {port} is out of range")
        allowed.append(Allowed(ipaddress.ip_network(match["net"] + (match["prefix"] or ""), strict=False), port))
    return allowed


def guarded_client(allow_cidrs: Iterable[str] = (), timeout: float = 30.0) -> httpx.AsyncClient:
    """An httpx client that can reach only public addresses (plus allow_cidrs); no proxies
    from the environment, no automatic redirects."""
    return httpx.AsyncClient(
        transport=GuardedTransport(parse_allow(allow_cidrs)), trust_env=False, follow_redirects=False, timeout=timeout
    )


def guarded_client_httpx2(allow_cidrs: Iterable[str] = (), timeout: float = 30.0) -> Any:
    """The same guard for the openai SDK, whose HTTP client is httpx2 (an httpx2.AsyncClient)."""
    import httpcore2
    import httpx2

    class Backend(_Guarded, httpcore2.AsyncNetworkBackend):
        pass

    transport = httpx2.AsyncHTTPTransport()
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(),
        network_backend=Backend(parse_allow(allow_cidrs), httpcore2.AnyIOBackend(), httpx2.ConnectError),
    )
    return httpx2.AsyncClient(transport=transport, trust_env=False, follow_redirects=False, timeout=timeout)


async def open_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None, max_redirects: int = 5
) -> httpx.Response:
    """GET url as a stream, following at most max_redirects redirects, each hop guarded.
    The caller closes the response."""
    current = check_url(url)
    for _ in range(max_redirects + 1):
        try:
            resp = await client.send(client.build_request("GET", current, headers=headers), stream=True)
        except httpx.InvalidURL as e:
            raise OutboundRefused(str(e)) from e
        if resp.status_code not in REDIRECTS or "location" not in resp.headers:
            return resp
        await resp.aclose()
        current = check_url(current.join(resp.headers["location"]))
    raise OutboundRefused(f"more than {max_redirects} redirects from {url[:200]!r}")
