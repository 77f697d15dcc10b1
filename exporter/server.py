"""Serves /metrics from one asyncio event loop in its own thread, so hundreds of idle or slow connections cost a
socket each and never a thread that others wait behind (issue 11: eight idle connections used to hold every
scrape thread, forever).

Every connection has a deadline: a whole request (TLS handshake, head and any body) within `timeout` seconds of
connecting or of the previous response, and the response taken within as long; then it is closed. HTTP framing
is h11's; the body is the tick's cached page (exposition.py); TLS and basic auth come from `--web.config.file`
(web_config.py). bcrypt runs on one worker thread so that a flood of wrong passwords costs at most one core and
never blocks the loop."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import resource
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Callable, Mapping

import h11
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.registry import Collector

from llm_dvfs.common.errors import UsageError
from llm_dvfs.exporter.exposition import MetricsPage
from llm_dvfs.exporter.web_config import WebConfig

if TYPE_CHECKING:
    from llm_dvfs.exporter.basic_auth import BasicAuth

DEFAULT_TIMEOUT_S = 30.0  # longer than Prometheus' default 15 s scrape interval, so kept-alive scrapers reuse
BACKLOG = 256  # socketserver's default of 5 refused bursts of concurrent scrapers
MAX_HEAD_BYTES = 16 * 1024
PATHS = (b"/", b"/metrics")
Headers = list[tuple[str, str]]


def listen_socket(address: str, port: int) -> socket.socket:
    """A listening TCP socket on `address` (IPv4, IPv6 with or without brackets, or a host name). `::` listens on
    IPv4 too, as Go exporters' `[::]:port` does; any other address only on itself."""
    host = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {address}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if _unspecified(host) else 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {address} is already in use") from None
        raise UsageError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    return sock


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_unspecified
    except ValueError:
        return False


def _basic_auth(users: Mapping[str, bytes]) -> BasicAuth:
    """Imported only when users are configured: bcrypt is then needed, and only then."""
    from llm_dvfs.exporter.basic_auth import BasicAuth

    return BasicAuth(users)


def _raise_open_file_limit() -> None:
    """Each open connection holds a descriptor: lift the soft limit (often 1024) to the hard one, as Go servers do
    at start, so a few hundred idle connections cannot starve the accept loop."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard and hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


class MetricsServer:
    """/metrics for `collector` plus the process's own CPU, memory, descriptors and GC (prometheus_client's
    ProcessCollector and GCCollector), so the exporter's cost is visible where it runs."""

    def __init__(self, collector: Collector, address: str, port: int, version: Callable[[], int], *,
                 timeout: float = DEFAULT_TIMEOUT_S, web: WebConfig | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._page = MetricsPage(self.registry, version)
        self._timeout = timeout
        web = web or WebConfig()
        self._tls = web.tls
        self._auth = _basic_auth(web.users) if web.users else None
        self._auth_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exporter-auth")
        self._host = address
        _raise_open_file_limit()
        sock = listen_socket(address, port)
        self._connections: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        tls_args = {"ssl": self._tls, "ssl_handshake_timeout": timeout} if self._tls else {}
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, sock=sock, backlog=BACKLOG, **tls_args))
        self._thread = threading.Thread(target=self._loop.run_forever, name="exporter-http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self._host.strip('[]')}]" if ":" in self._host else self._host
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}/metrics"

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._auth_pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        closed_cleanly = False
        try:
            try:
                await self._serve(conn, reader, writer)
            except h11.RemoteProtocolError as exc:
                await self._refuse(conn, writer, exc.error_status_hint)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), self._timeout)
            closed_cleanly = True
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError, OSError):
            pass  # too slow, gone, or not speaking TLS: nothing to answer
        except asyncio.CancelledError:
            pass  # shutting down; ending normally keeps Python 3.11's start_server callback from logging it
        finally:
            if not closed_cleanly:
                writer.transport.abort()
            self._connections.discard(task)

    async def _serve(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests one after another (keep-alive) until the client closes or must; each within the deadline."""
        while True:
            request = await asyncio.wait_for(self._read_request(conn, reader), self._timeout)
            if request is None:
                return
            await asyncio.wait_for(self._answer(conn, writer, request), self._timeout)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        """The next request, once it has arrived whole (a body nobody needs is read and dropped); None when the
        client closed between requests."""
        request = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _answer(self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request) -> None:
        fields: dict[str, str] = {}
        for name, value in request.headers:
            key = name.decode("latin-1")
            fields[key] = f"{fields[key]}, {value.decode('latin-1')}" if key in fields else value.decode("latin-1")
        head = request.method == b"HEAD"
        if self._auth is not None and not await self._authorized(fields.get("authorization")):
            await self._send(conn, writer, 401, [("WWW-Authenticate", self._auth.challenge)], b"Unauthorized\n")
        elif request.method not in (b"GET", b"HEAD"):
            await self._send(conn, writer, 405, [("Allow", "GET, HEAD")], b"only GET /metrics here\n")
        elif request.target.partition(b"?")[0] not in PATHS:
            await self._send(conn, writer, 404, [], b"only /metrics here\n")
        else:
            body = self._page.render(fields.get("accept", ""), fields.get("accept-encoding", ""))
            headers = [("Content-Type", body.content_type), ("Vary", "Accept, Accept-Encoding")]
            if body.gzipped:
                headers.append(("Content-Encoding", "gzip"))
            await self._send(conn, writer, 200, headers, body.content, head=head)

    async def _authorized(self, header: str | None) -> bool:
        assert self._auth is not None
        if self._auth.remembered(header):
            return True
        return await asyncio.get_running_loop().run_in_executor(self._auth_pool, self._auth.verify, header)

    @staticmethod
    async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, headers: Headers,
                    body: bytes, head: bool = False) -> None:
        if status != 200:
            headers = [*headers, ("Content-Type", "text/plain; charset=utf-8")]
        headers = [*headers, ("Content-Length", str(len(body)))]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers,
                                            reason=HTTPStatus(status).phrase)))
        if body and not head:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _refuse(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int) -> None:
        """Answer a malformed request (400, 431, ...) when the connection still can; the caller closes it."""
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await asyncio.wait_for(self._send(conn, writer, status, [("Connection", "close")],
                                              f"{HTTPStatus(status).phrase}\n".encode()), self._timeout)
