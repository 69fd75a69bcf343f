"""The outbound URL guard (lodestone.netguard): SSRF corpus, redirects, allow-lists, DNS failure.

No traffic leaves 127.0.0.1. Two autouse stand-ins make sure of it:
- name resolution only answers IP literals and a small fixed hosts table (no DNS query is
  ever sent; the sandbox resolver is not on loopback), everything else fails as NXDOMAIN;
- the real TCP connect under the guard is a tripwire for anything but 127.0.0.1, so a URL the
  guard wrongly accepts fails its test with GuardBypassed instead of being connected to.
None of the session fixtures in conftest.py (the whole stack) are used here.
"""

import ipaddress
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpcore
import httpx
import pytest

from lodestone.netguard import OutboundRefused, check_address, check_url, guarded_client, open_stream, parse_allow

LOCAL = "127.0.0.1"

# Names the stand-in resolver knows (as /etc/hosts would); IP literals resolve as themselves.
HOSTS = {
    "localhost": ["127.0.0.1"],
    "metadata.internal.test": ["169.254.169.254"],
    "split-horizon.test": ["8.8.8.8", "10.0.0.7"],
}


class GuardBypassed(Exception):
    """The guard let a connection through to an address no test may reach."""


@pytest.fixture(autouse=True)
def no_outside_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def local_getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        numeric = flags | socket.AI_NUMERICHOST
        if name in HOSTS:
            return [info for addr in HOSTS[name] for info in real_getaddrinfo(addr, port, family, type, proto, numeric)]
        try:
            return real_getaddrinfo(name, port, family, type, proto, numeric)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None

    real_connect = httpcore.AnyIOBackend.connect_tcp

    async def tripwire_connect(self: httpcore.AnyIOBackend, host: str, port: int, **kw: Any) -> Any:
        if host != LOCAL:
            raise GuardBypassed(f"the guard let a connection through to {host}:{port}")
        return await real_connect(self, host, port, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", local_getaddrinfo)
    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", tripwire_connect)


# --------------------------------------------------------------------------------------------
# 1. SSRF corpus: every URL refused by the default guard (no allow-list), with the reason.

NOT_PUBLIC = "is not public"
SCHEME = "is not allowed: only http and https"


def refused(url: str, why: str, id: str) -> Any:
    return pytest.param(url, why, id=id)


SSRF_CORPUS = [
    # loopback
    refused("http://127.0.0.1/", "address 127.0.0.1 " + NOT_PUBLIC, "v4-loopback"),
    refused("http://127.0.0.1:8080/admin", "address 127.0.0.1 " + NOT_PUBLIC, "v4-loopback-port"),
    refused("http://127.1.2.3:9000/", "address 127.1.2.3 " + NOT_PUBLIC, "v4-loopback-other"),
    refused("http://localhost/", "address 127.0.0.1 " + NOT_PUBLIC, "localhost"),
    refused("http://localhost:5432/", "address 127.0.0.1 " + NOT_PUBLIC, "localhost-port"),
    refused("http://[::1]/", "address ::1 " + NOT_PUBLIC, "v6-loopback"),
    refused("http://[::1]:8080/", "address ::1 " + NOT_PUBLIC, "v6-loopback-port"),
    refused("http://0.0.0.0/", "address 0.0.0.0 " + NOT_PUBLIC, "v4-unspecified"),
    refused("http://0/", "address 0.0.0.0 " + NOT_PUBLIC, "v4-unspecified-short"),
    refused("http://[::]/", "address :: " + NOT_PUBLIC, "v6-unspecified"),
    # RFC 1918 private
    refused("http://10.0.0.1/", "address 10.0.0.1 " + NOT_PUBLIC, "10/8"),
    refused("http://10.255.255.254:8443/", "address 10.255.255.254 " + NOT_PUBLIC, "10/8-top"),
    refused("http://172.16.0.1/", "address 172.16.0.1 " + NOT_PUBLIC, "172.16/12-bottom"),
    refused("http://172.31.255.254/", "address 172.31.255.254 " + NOT_PUBLIC, "172.16/12-top"),
    refused("http://192.168.0.1/", "address 192.168.0.1 " + NOT_PUBLIC, "192.168/16"),
    refused("http://192.168.1.1:8080/", "address 192.168.1.1 " + NOT_PUBLIC, "192.168/16-port"),
    # link-local / cloud metadata / CGNAT
    refused("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 " + NOT_PUBLIC, "metadata-aws"),
    refused("http://169.254.169.254/computeMetadata/v1/", "address 169.254.169.254 " + NOT_PUBLIC, "metadata-gcp"),
    refused("https://169.254.169.254/", "address 169.254.169.254 " + NOT_PUBLIC, "metadata-https"),
    refused("http://169.254.1.1/", "address 169.254.1.1 " + NOT_PUBLIC, "v4-link-local"),
    refused("http://100.64.0.1/", "address 100.64.0.1 " + NOT_PUBLIC, "cgnat"),
    refused("http://192.0.0.8/", "address 192.0.0.8 " + NOT_PUBLIC, "ietf-protocol"),
    # numeric encodings of loopback / metadata
    refused("http://2130706433/", "address 127.0.0.1 " + NOT_PUBLIC, "decimal-loopback"),
    refused("http://0x7f000001/", "address 127.0.0.1 " + NOT_PUBLIC, "hex-loopback"),
    refused("http://0x7f.0.0.1/", "address 127.0.0.1 " + NOT_PUBLIC, "hex-dotted-loopback"),
    refused("http://0177.0.0.1/", "invalid URL", "octal-dotted-loopback"),
    refused("http://017700000001/", "address 127.0.0.1 " + NOT_PUBLIC, "octal-loopback"),
    refused("http://127.1/", "address 127.0.0.1 " + NOT_PUBLIC, "short-127.1"),
    refused("http://127.0.1/", "address 127.0.0.1 " + NOT_PUBLIC, "short-127.0.1"),
    refused("http://2852039166/", "address 169.254.169.254 " + NOT_PUBLIC, "decimal-metadata"),
    refused("http://0xa9fea9fe/", "address 169.254.169.254 " + NOT_PUBLIC, "hex-metadata"),
    # IPv4-mapped IPv6
    refused("http://[::ffff:127.0.0.1]/", "address ::ffff:7f00:1 " + NOT_PUBLIC, "mapped-loopback"),
    refused("http://[::ffff:127.0.0.1]:8080/", "address ::ffff:7f00:1 " + NOT_PUBLIC, "mapped-loopback-port"),
    refused("http://[::ffff:7f00:1]/", "address ::ffff:7f00:1 " + NOT_PUBLIC, "mapped-loopback-hex"),
    refused("http://[::ffff:10.0.0.1]/", "address ::ffff:a00:1 " + NOT_PUBLIC, "mapped-10/8"),
    refused("http://[::ffff:169.254.169.254]/", "address ::ffff:a9fe:a9fe " + NOT_PUBLIC, "mapped-metadata"),
    # IPv4-compatible (deprecated ::/96), NAT64, 6to4, Teredo forms embedding private v4
    refused("http://[::127.0.0.1]/", "address ::7f00:1 " + NOT_PUBLIC, "v4-compatible-loopback"),
    refused("http://[::10.0.0.1]/", "address ::a00:1 " + NOT_PUBLIC, "v4-compatible-10/8"),
    refused("http://[64:ff9b::a00:1]/", "address 64:ff9b::a00:1 " + NOT_PUBLIC, "nat64-10/8"),
    refused("http://[64:ff9b::7f00:1]/", "address 64:ff9b::7f00:1 " + NOT_PUBLIC, "nat64-loopback"),
    refused("http://[64:ff9b::a9fe:a9fe]/", "address 64:ff9b::a9fe:a9fe " + NOT_PUBLIC, "nat64-metadata"),
    refused("http://[64:ff9b:1::a00:1]/", "address 64:ff9b:1::a00:1 " + NOT_PUBLIC, "nat64-local-use"),
    refused("http://[2002:7f00:1::]/", "address 2002:7f00:1:: " + NOT_PUBLIC, "6to4-loopback"),
    refused("http://[2002:a00:1::1]/", "address 2002:a00:1::1 " + NOT_PUBLIC, "6to4-10/8"),
    refused("http://[2002:a9fe:a9fe::1]/", "address 2002:a9fe:a9fe::1 " + NOT_PUBLIC, "6to4-metadata"),
    refused(
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "address 2001:0:4136:e378:8000:63bf:80ff:fffe " + NOT_PUBLIC,
        "teredo-loopback",
    ),
    # IPv6 ULA, link-local, site-local
    refused("http://[fc00::1]/", "address fc00::1 " + NOT_PUBLIC, "v6-ula-fc00"),
    refused("http://[fd12:3456:789a::1]/", "address fd12:3456:789a::1 " + NOT_PUBLIC, "v6-ula-fd"),
    refused("http://[fe80::1]/", "address fe80::1 " + NOT_PUBLIC, "v6-link-local"),
    refused("http://[fec0::1]/", "address fec0::1 " + NOT_PUBLIC, "v6-site-local"),
    # multicast / broadcast
    refused("http://224.0.0.1/", "address 224.0.0.1 " + NOT_PUBLIC, "v4-multicast"),
    refused("http://239.255.255.250:1900/", "address 239.255.255.250 " + NOT_PUBLIC, "v4-multicast-ssdp"),
    refused("http://[ff02::1]/", "address ff02::1 " + NOT_PUBLIC, "v6-multicast"),
    refused("http://255.255.255.255/", "address 255.255.255.255 " + NOT_PUBLIC, "v4-broadcast"),
    # names that resolve to non-public addresses (every answer is checked, not just the first)
    refused("http://metadata.internal.test/", "address 169.254.169.254 " + NOT_PUBLIC, "name-to-metadata"),
    refused("http://split-horizon.test/", "address 10.0.0.7 " + NOT_PUBLIC, "name-public-and-private"),
    # other schemes
    refused("file:///etc/passwd", "scheme 'file' " + SCHEME, "file"),
    refused("file://localhost/etc/passwd", "scheme 'file' " + SCHEME, "file-localhost"),
    refused("gopher://127.0.0.1:70/_GET%20/", "scheme 'gopher' " + SCHEME, "gopher"),
    refused("ftp://127.0.0.1/", "scheme 'ftp' " + SCHEME, "ftp-loopback"),
    refused("ftp://example.com/file.txt", "scheme 'ftp' " + SCHEME, "ftp-public"),
    refused("dict://127.0.0.1:11211/stat", "scheme 'dict' " + SCHEME, "dict"),
    refused("ldap://127.0.0.1/", "scheme 'ldap' " + SCHEME, "ldap"),
    refused("data:text/plain;base64,SGVsbG8=", "scheme 'data' " + SCHEME, "data"),
    refused("javascript:alert(1)", "scheme 'javascript' " + SCHEME, "javascript"),
    # scheme-less strings
    refused("127.0.0.1/admin", "scheme '(none)' " + SCHEME, "schemeless-ip"),
    refused("//169.254.169.254/latest/meta-data/", "scheme '(none)' " + SCHEME, "schemeless-network-path"),
    refused("example.com", "scheme '(none)' " + SCHEME, "schemeless-name"),
    refused("localhost:8080", "scheme 'localhost' " + SCHEME, "schemeless-host-port"),
    refused("", "scheme '(none)' " + SCHEME, "empty"),
    # malformed / hostless
    refused("http://[::1", "invalid URL", "unclosed-bracket"),
    refused("http:///path", "has no host", "no-host"),
    refused("http:/127.0.0.1/", "has no host", "single-slash"),
    # credentials in the URL
    refused("http://user:pass@example.com/", "credentials", "userinfo"),
    refused("http://user@example.com/", "credentials", "username-only"),
    refused("https://:token@example.com/", "credentials", "password-only"),
    refused("http://example.com@127.0.0.1/", "credentials", "userinfo-confusion"),
    refused("http://127.0.0.1:80@example.com/", "credentials", "userinfo-confusion-port"),
]


@pytest.mark.parametrize(("url", "why"), SSRF_CORPUS)
async def test_ssrf_corpus_is_refused(url: str, why: str) -> None:
    async with guarded_client() as client:
        with pytest.raises(OutboundRefused) as exc:
            resp = await open_stream(client, url)
            await resp.aclose()
    assert why in str(exc.value)


def test_corpus_is_large_enough() -> None:
    assert len(SSRF_CORPUS) >= 30
    assert len({p.values[0] for p in SSRF_CORPUS}) == len(SSRF_CORPUS)


# --------------------------------------------------------------------------------------------
# 2. Redirects, against a local server on 127.0.0.1 with only 127.0.0.1/32 allowed.


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hits: list[str]

    def server_bind(self) -> None:
        # HTTPServer.server_bind would do a reverse lookup (getfqdn); the name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/ok":
            body = b"hello from /ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if parts.path == "/to":
            query = parse_qs(parts.query)
            self._redirect(int(query.get("code", ["302"])[0]), query["u"][0])
            return
        if parts.path == "/loop":
            self._redirect(302, "/loop")
            return
        self.send_error(404)

    def _redirect(self, code: int, location: str) -> None:
        self.send_response(code)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server((LOCAL, 0), _Handler)
    srv.hits = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def base(server: _Server) -> str:
    server.hits.clear()
    return f"http://{LOCAL}:{server.server_port}"


@pytest.fixture
async def loopback_client() -> AsyncIterator[httpx.AsyncClient]:
    async with guarded_client([f"{LOCAL}/32"], timeout=10.0) as client:
        yield client


def to(base: str, url: str, code: int = 302) -> str:
    return str(httpx.URL(f"{base}/to", params={"u": url, "code": str(code)}))


async def test_allowed_loopback_ok(base: str, server: _Server, loopback_client: httpx.AsyncClient) -> None:
    resp = await open_stream(loopback_client, f"{base}/ok")
    try:
        assert resp.status_code == 200
        assert await resp.aread() == b"hello from /ok"
    finally:
        await resp.aclose()
    assert server.hits == ["/ok"]


async def test_default_client_refuses_the_same_server(base: str, server: _Server) -> None:
    async with guarded_client() as client:
        with pytest.raises(OutboundRefused, match="address 127.0.0.1 is not public"):
            await open_stream(client, f"{base}/ok")
    assert server.hits == []


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirect_to_metadata_refused(
    base: str, server: _Server, loopback_client: httpx.AsyncClient, code: int
) -> None:
    with pytest.raises(OutboundRefused, match="address 169.254.169.254 is not public"):
        await open_stream(loopback_client, to(base, "http://169.254.169.254/latest/meta-data/", code))
    assert len(server.hits) == 1 and server.hits[0].startswith("/to?")


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://10.0.0.1/", "address 10.0.0.1 is not public"),
        ("http://127.0.0.2:{port}/ok", "address 127.0.0.2 is not public"),
        ("http://[::1]:{port}/", "address ::1 is not public"),
        ("http://localhost:{port}/ok", None),  # resolves to 127.0.0.1, which is allowed: see below
        ("http://[::ffff:127.0.0.2]:{port}/ok", "address ::ffff:7f00:2 is not public"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("gopher://127.0.0.1:{port}/", "scheme 'gopher' is not allowed"),
        ("http://user:pw@127.0.0.1:{port}/ok", "credentials"),
    ],
    ids=[
        "10/8",
        "other-loopback",
        "v6-loopback",
        "localhost-allowed",
        "mapped-other-loopback",
        "file",
        "gopher",
        "credentials",
    ],
)
async def test_redirect_targets(
    base: str, server: _Server, loopback_client: httpx.AsyncClient, target: str, why: str | None
) -> None:
    url = to(base, target.format(port=server.server_port))
    if why is None:
        # Control: the redirect machinery itself works, so the refusals above are the guard's doing.
        resp = await open_stream(loopback_client, url)
        try:
            assert resp.status_code == 200
            assert await resp.aread() == b"hello from /ok"
        finally:
            await resp.aclose()
        assert server.hits[-1] == "/ok"
        return
    with pytest.raises(OutboundRefused) as exc:
        resp = await open_stream(loopback_client, url)
        await resp.aclose()
    assert why in str(exc.value)
    assert len(server.hits) == 1 and server.hits[0].startswith("/to?")  # the target was never reached


async def test_redirect_loop_hits_limit(base: str, server: _Server, loopback_client: httpx.AsyncClient) -> None:
    with pytest.raises(OutboundRefused, match="more than 3 redirects"):
        await open_stream(loopback_client, f"{base}/loop", max_redirects=3)
    assert server.hits == ["/loop"] * 4  # the first request plus three redirects followed


async def test_redirect_limit_zero(base: str, server: _Server, loopback_client: httpx.AsyncClient) -> None:
    with pytest.raises(OutboundRefused, match="more than 0 redirects"):
        await open_stream(loopback_client, to(base, "/ok"), max_redirects=0)
    assert server.hits[-1] != "/ok"


async def test_relative_redirect_followed(base: str, server: _Server, loopback_client: httpx.AsyncClient) -> None:
    resp = await open_stream(loopback_client, to(base, "/ok"), max_redirects=1)
    try:
        assert resp.status_code == 200
        assert str(resp.url) == f"{base}/ok"
        assert await resp.aread() == b"hello from /ok"
    finally:
        await resp.aclose()
    assert len(server.hits) == 2 and server.hits[1] == "/ok"


# --------------------------------------------------------------------------------------------
# 3. check_address: classification only, no network.


@pytest.mark.parametrize(
    "addr",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(addr: str) -> None:
    check_address(ipaddress.ip_address(addr))


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::7f00:1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_refused(addr: str) -> None:
    with pytest.raises(OutboundRefused, match="is not public"):
        check_address(ipaddress.ip_address(addr))


@pytest.mark.parametrize(
    ("cidr", "inside", "outside"),
    [
        (
            "10.1.2.0/24",
            ["10.1.2.0", "10.1.2.77", "10.1.2.255", "::ffff:10.1.2.3"],
            ["10.1.1.255", "10.1.3.0", "10.0.0.1"],
        ),
        ("127.0.0.1/32", ["127.0.0.1"], ["127.0.0.0", "127.0.0.2", "::1", "10.0.0.1"]),
        ("169.254.169.254/32", ["169.254.169.254"], ["169.254.169.253", "169.254.169.255"]),
        ("fd00:1::/64", ["fd00:1::5", "fd00:1::ffff:ffff:ffff:ffff"], ["fd00:1:0:1::", "fd00::1", "fc00::1"]),
        ("::1/128", ["::1"], ["::", "::2", "127.0.0.1"]),
    ],
)
def test_allow_list_admits_exactly_its_cidr(cidr: str, inside: list[str], outside: list[str]) -> None:
    allow = parse_allow([cidr])
    for addr in inside:
        check_address(ipaddress.ip_address(addr), allow)
    for addr in outside:
        with pytest.raises(OutboundRefused, match="is not public"):
            check_address(ipaddress.ip_address(addr), allow)


@pytest.mark.parametrize(
    ("entry", "admitted", "refused"),
    [
        (
            "127.0.0.1:8080",
            [("127.0.0.1", 8080), ("::ffff:127.0.0.1", 8080)],
            [("127.0.0.1", 8081), ("127.0.0.1", 80), ("127.0.0.1", None), ("127.0.0.2", 8080)],
        ),
        ("[::1]:9464", [("::1", 9464)], [("::1", 9465), ("127.0.0.1", 9464)]),
        ("10.0.0.0/8:443", [("10.9.8.7", 443)], [("10.9.8.7", 80), ("172.16.0.1", 443)]),
        ("fd00::/8", [("fd12::1", 1), ("fd12::1", 65535)], [("fc00::1", 1)]),
    ],
)
def test_allow_list_entries_may_name_a_port(entry: str, admitted: list, refused: list) -> None:
    allow = parse_allow([entry])
    for addr, port in admitted:
        check_address(ipaddress.ip_address(addr), allow, port)
    for addr, port in refused:
        with pytest.raises(OutboundRefused, match="is not public"):
            check_address(ipaddress.ip_address(addr), allow, port)


@pytest.mark.parametrize("entry", ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "localhost:80"])
def test_allow_list_refuses_bad_entries(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_allow([entry])


async def test_a_port_entry_reaches_that_port_and_no_other(base: str, server: _Server) -> None:
    """The dev stack's allow-list: its demo receiver's loopback port, not the stack's own listeners."""
    other = socketserver.TCPServer((LOCAL, 0), BaseHTTPRequestHandler)  # a listener the entry does not name
    try:
        async with guarded_client([f"{LOCAL}:{server.server_port}"], timeout=10.0) as client:
            resp = await open_stream(client, f"{base}/ok")
            assert resp.status_code == 200
            await resp.aclose()
            with pytest.raises(OutboundRefused, match="is not public"):
                await open_stream(client, f"http://{LOCAL}:{other.server_address[1]}/metrics")
            # Nor does a redirect from the allowed port lead to another one.
            with pytest.raises(OutboundRefused, match="is not public"):
                await open_stream(client, to(base, f"http://{LOCAL}:{other.server_address[1]}/drain"))
    finally:
        other.server_close()


def test_allow_list_does_not_refuse_public() -> None:
    check_address(ipaddress.ip_address("8.8.8.8"), parse_allow(["10.0.0.0/8"]))


def test_check_url_accepts_http_and_https() -> None:
    assert check_url("https://example.com/a?b=c").host == "example.com"
    assert check_url("HTTP://Example.COM/").scheme == "http"


# --------------------------------------------------------------------------------------------
# 4. DNS failure is transient (httpx.ConnectError), not a refusal.


@pytest.mark.parametrize("url", ["http://no-such-host.invalid/", "https://no-such-host.invalid:8443/x"])
async def test_unresolvable_host_is_connect_error(url: str) -> None:
    async with guarded_client() as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve 'no-such-host.invalid'") as exc:
            await open_stream(client, url)
    assert not isinstance(exc.value, OutboundRefused)
