"""A local HTTPS proxy that lets unmodified Shopify clients reach the sandbox.

Peers such as Airbyte's source-shopify and tap-shopify build their URLs from the shop's
domain (``https://{shop}.myshopify.com/admin/...``) and cannot be given a base URL. Told to
use this proxy (``HTTPS_PROXY``) and to trust its throwaway CA (``REQUESTS_CA_BUNDLE``,
``SSL_CERT_FILE``), they open ``CONNECT {shop}.myshopify.com:443``; the proxy answers it
itself, terminates TLS with a leaf certificate for that host signed by the CA, and forwards
each request to the sandbox at ``{sandbox}/shopify/{shop}/admin/...``. ``Link`` headers
(REST pagination) come back in the ``https://{shop}/admin/...`` form the client expects.

It is no open proxy: a CONNECT to any other host is refused (403), and so is a plain-HTTP
proxy request. The CA lives in a temporary directory for one run and signs nothing else.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SHOP_HOST = re.compile(r"[a-z0-9][a-z0-9-]{0,59}\.myshopify\.com")
# Hop-by-hop headers (RFC 9110 section 7.6.1) and those httpx sets from the body itself.
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length", "host", "accept-encoding",
}  # fmt: skip


def sandbox_url(sandbox_base: str, shop: str, target: str) -> str:
    """The sandbox URL for a request line ``target`` (path and query) sent to ``shop``."""
    if not target.startswith("/"):
        raise ValueError(f"not an origin-form request target: {target!r}")
    return f"{sandbox_base.rstrip('/')}/shopify/{shop}{target}"


def public_link(link: str, sandbox_base: str, shop: str) -> str:
    """A ``Link`` header the sandbox wrote for ``shop``, in the form Shopify writes it:
    ``<{sandbox}/shopify/{shop}/admin/...>`` becomes ``<https://{shop}/admin/...>``."""
    return link.replace(f"{sandbox_base.rstrip('/')}/shopify/{shop}/", f"https://{shop}/")


class CertificateAuthority:
    """A throwaway CA (P-256, one day) and the leaf certificates it signs, one per host."""

    def __init__(self, directory: Path) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Connector Hub bench CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.directory = directory
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for ``host``."""
        with self._lock:
            context = self._contexts.get(host)
            if context is None:
                context = self._contexts[host] = self._leaf_context(host)
            return context

    def _leaf_context(self, host: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        chain = self.directory / f"{host}.pem"
        chain.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain)
        return context


@dataclass
class ProxyCounts:
    """What went through the proxy, per shop host: requests forwarded, by status."""

    connects: int = 0
    refused: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class TlsProxy:
    """The proxy's asyncio server; ``serve()`` runs it in a thread for the block."""

    def __init__(self, sandbox_base: str, directory: Path) -> None:
        self.sandbox_base = sandbox_base.rstrip("/")
        self.ca = CertificateAuthority(directory)
        self.counts = ProxyCounts()
        self.port = 0
        self._client: httpx.AsyncClient | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, _, authority = request_line.partition(" ")
            authority = authority.rsplit(" ", 1)[0]
            host, _, port = authority.rpartition(":")
            if method != "CONNECT" or port != "443" or not SHOP_HOST.fullmatch(host.lower()):
                self.counts.refused += 1
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            self.counts.connects += 1
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(self.ca.server_context(host.lower()))
            await self._relay(host.lower(), reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, h11.ProtocolError):
            pass  # the client went away, or spoke no TLS/HTTP: nothing to answer
        finally:
            writer.close()

    async def _relay(
        self, shop: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve HTTP/1.1 requests on the decrypted connection until the client closes it."""
        conn = h11.Connection(h11.SERVER)
        assert self._client is not None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.SEND_BODY:
                    return
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                if event is h11.PAUSED and conn.our_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return
            if not isinstance(event, h11.Request):
                continue
            body = bytearray()
            while True:
                part = conn.next_event()
                if part is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(part, h11.Data):
                    body += part.data
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    raise h11.RemoteProtocolError(f"unexpected {part!r}")
            headers = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in event.headers
                if k.decode("latin-1").lower() not in _HOP_BY_HOP
            ]
            target = event.target.decode("latin-1")
            upstream = await self._client.request(
                event.method.decode(),
                sandbox_url(self.sandbox_base, shop, target),
                headers=headers,
                content=bytes(body),
            )
            status = upstream.status_code
            self.counts.statuses[status] = self.counts.statuses.get(status, 0) + 1
            out = [
                (k, public_link(v, self.sandbox_base, shop) if k.lower() == "link" else v)
                for k, v in upstream.headers.items()
                if k.lower() not in _HOP_BY_HOP | {"content-encoding"}
            ]
            out.append(("content-length", str(len(upstream.content))))
            writer.write(conn.send(h11.Response(status_code=status, headers=out)) or b"")
            writer.write(conn.send(h11.Data(data=upstream.content)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    @contextmanager
    def serve(self) -> Iterator[TlsProxy]:
        """Run the proxy on a free loopback port in a thread while the block runs."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        stopping: asyncio.Event | None = None

        async def main() -> None:
            nonlocal stopping
            stopping = asyncio.Event()
            # The sandbox is on loopback: no proxy from the environment, many connections.
            self._client = httpx.AsyncClient(
                trust_env=False, timeout=300, limits=httpx.Limits(max_connections=64)
            )
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            async with server, self._client:
                await stopping.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("the TLS proxy did not start")
        try:
            yield self
        finally:
            assert stopping is not None
            loop.call_soon_threadsafe(stopping.set)
            thread.join(timeout=10)

    def environment(self) -> dict[str, str]:
        """What a peer's process needs to go through the proxy and trust its CA."""
        proxy = f"http://127.0.0.1:{self.port}"
        ca = str(self.ca.ca_file)
        return {
            "HTTPS_PROXY": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "http_proxy": proxy,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": ca, "SSL_CERT_FILE": ca, "CURL_CA_BUNDLE": ca,
        }  # fmt: skip


@contextmanager
def tls_proxy(sandbox_base: str) -> Iterator[TlsProxy]:
    """A proxy to the sandbox at ``sandbox_base`` with a CA made for this block only."""
    with (
        tempfile.TemporaryDirectory(prefix="hub-peers-ca-") as tmp,
        TlsProxy(sandbox_base, Path(tmp)).serve() as proxy,
    ):
        yield proxy
