"""A small HTTP/1.1 client for the model providers: a POST with a JSON body, the answer streamed
back, connections kept alive per origin. TLS through `ssl.create_default_context()` for https.

Why not httpx (README "What it is built on, and why"): with thousands of runs streaming in one
process the model client was half of the worker's CPU, and most of that was httpx's layers over
each request (anyio streams and task groups, the pool's bookkeeping, h11's event objects):
`python -m bench.http_clients` measures this client, httpx and aiohttp side by side.

What it does: Content-Length and chunked bodies, a body read to the close of an HTTP/1.0-style
answer, gzip/deflate if a server compresses anyway (identity is asked for), keep-alive with an
idle expiry, one timeout for connecting and for each wait on the server (as httpx's `timeout=`),
and one fresh retry when a reused keep-alive connection turns out to be closed before any byte
of the answer came back (the server closed it while it sat idle; the request never reached it).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from contextlib import asynccontextmanager
from typing import AsyncIterator
from urllib.parse import urlsplit

__all__ = ["Client", "Response", "TransportError", "Timeout", "default_ssl_context"]

_MAX_HEAD = 64 * 1024
_KEEPALIVE_S = 15.0  # an idle connection older than this is closed rather than reused


class TransportError(ConnectionError):
    """Refused, reset, dropped mid-answer, or an answer that is not HTTP/1.1."""


class Timeout(TransportError, TimeoutError):
    """Nothing came from the server within the timeout."""


_default_ssl: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The system's trust store (SSL_CERT_FILE and SSL_CERT_DIR honoured), for every https call
    that is not given a context of its own, direct or through a proxy."""
    global _default_ssl  # loading the CA bundle costs milliseconds: once per process
    if _default_ssl is None:
        _default_ssl = ssl.create_default_context()
    return _default_ssl


class _Conn(asyncio.Protocol):
    """One connection; parses the answer as bytes arrive and hands the body out in pieces."""

    def __init__(self, pool: dict | None, key: tuple) -> None:
        self.loop = asyncio.get_running_loop()
        self.key, self.pool = key, pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.expiry: asyncio.TimerHandle | None = None

    # -- per request --------------------------------------------------------------------------
    def begin(self, timeout: float) -> None:
        self.buf = bytearray()
        self.pieces: list[bytes] = []
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = self.done = False
        self.length = -1  # bytes of body left; -1 chunked, -2 until the connection closes
        self.chunk = 0  # bytes left in the current chunk; -1 the CRLF after it, -2 trailers
        self.received = 0
        self.keep_alive = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.timeout, self.last = timeout, self.loop.time()
        self.timer = self.loop.call_at(self.last + timeout, self._check_timeout)

    def end(self) -> None:
        self.timer.cancel()

    async def wait(self) -> None:
        """Until the parser made progress (or failed)."""
        if self.error is None:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.error is not None:
            raise self.error

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _check_timeout(self) -> None:
        # One timer a request, moved on lazily: bytes arriving only record the time.
        due = self.last + self.timeout
        if self.done or self.closed:
            return
        if self.loop.time() >= due:
            self._fail(Timeout(f"no answer within {self.timeout:g} s"))
            if self.transport is not None:
                self.transport.abort()
        else:
            self.timer = self.loop.call_at(due, self._check_timeout)

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.pool is not None and self.expiry is not None:  # idle: the server spoke out of turn
            self.transport.close()  # type: ignore[union-attr]
            return
        self.last = self.loop.time()
        self.received += len(data)
        self.buf += data
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self._fail(TransportError(f"malformed HTTP answer ({exc})"))
            self.transport.abort()  # type: ignore[union-attr]
            return
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.expiry is not None:  # closed while idle: out of the pool
            self.expiry.cancel()
            self.pool.get(self.key, {}).pop(self, None)  # type: ignore[union-attr]
            return
        if getattr(self, "done", True):
            return
        if self.head_done and self.length == -2:
            self.done = True  # the body ran to the close, as the answer said it would
            self._wake()
        else:
            what = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
            self._fail(TransportError(f"connection lost mid-answer ({what})"))

    # -- the parser -----------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self.buf
        while not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("head too long")
                return
            lines = bytes(buf[:end]).split(b"\r\n")
            del buf[:end + 4]
            version, status = lines[0].split(b" ", 2)[:2]
            if not version.startswith(b"HTTP/1."):
                raise ValueError(f"not HTTP/1.x: {lines[0][:40]!r}")
            self.status = int(status)
            if 100 <= self.status < 200:
                continue  # 100 Continue and friends: the real answer follows
            headers = self.headers
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            self.head_done = True
            self.keep_alive = version == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
            if self.status in (204, 304):
                self.length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self.length = -1
            elif "content-length" in headers:
                self.length = int(headers["content-length"])
            else:
                self.length, self.keep_alive = -2, False
        if self.length >= 0:
            take = min(self.length, len(buf))
            if take:
                self.pieces.append(bytes(buf[:take]))
                del buf[:take]
                self.length -= take
            self.done = self.length == 0
        elif self.length == -2:
            if buf:
                self.pieces.append(bytes(buf))
                buf.clear()
        else:
            self._chunks(buf)

    def _chunks(self, buf: bytearray) -> None:
        while buf and not self.done:
            if self.chunk > 0:
                take = min(self.chunk, len(buf))
                self.pieces.append(bytes(buf[:take]))
                del buf[:take]
                self.chunk -= take
                if self.chunk == 0:
                    self.chunk = -1
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("chunk line too long")
                return
            line = bytes(buf[:end])
            del buf[:end + 2]
            if self.chunk == -1:  # the CRLF closing a chunk's data
                if line:
                    raise ValueError("chunk longer than its size")
                self.chunk = 0
            elif self.chunk == -2:  # trailers, up to an empty line
                if not line:
                    self.done = True
            else:
                size = int(line.split(b";", 1)[0].strip(), 16)
                self.chunk = size if size else -2


class Response:
    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self.status_code = conn.status
        self.headers = conn.headers
        coding = conn.headers.get("content-encoding", "identity").lower()
        if coding in ("gzip", "deflate", "x-gzip"):
            self._inflate = zlib.decompressobj(wbits=47)  # gzip or zlib header, found by zlib
        elif coding == "identity":
            self._inflate = None
        else:
            raise TransportError(f"unsupported content-encoding {coding!r}")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.pieces:
                data = conn.pieces[0] if len(conn.pieces) == 1 else b"".join(conn.pieces)
                conn.pieces.clear()
                yield self._inflate.decompress(data) if self._inflate else data
            elif conn.done:
                return
            else:
                await conn.wait()

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])


class Client:
    """Connections per origin, kept alive, no limit on their number (a model's `Limit` bounds
    the requests in flight). `timeout` bounds connecting and each wait for the server."""

    def __init__(self, timeout: float = 120.0, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self._ssl = ssl_context
        self._idle: dict[tuple, dict[_Conn, None]] = {}  # LIFO; a dict so a closed one leaves in O(1)

    @asynccontextmanager
    async def stream(self, method: str, url: str, headers: dict[str, str], content: bytes) -> AsyncIterator[Response]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        key = (tls, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        lines = [f"{method} {target} HTTP/1.1", f"host: {host}", "accept-encoding: identity",
                 f"content-length: {len(content)}"]
        for name, value in headers.items():
            if name.lower() in ("host", "content-length", "accept-encoding", "transfer-encoding"):
                continue
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content
        conn = await self._send(key, request)
        try:
            while not conn.head_done:
                await conn.wait()
            yield Response(conn)
        finally:
            conn.end()
            self._release(conn)

    async def _send(self, key: tuple, request: bytes) -> _Conn:
        idle = self._idle.get(key)
        loop = asyncio.get_running_loop()
        while idle:
            conn, _ = idle.popitem()
            conn.expiry.cancel()  # type: ignore[union-attr]
            conn.expiry = None
            if conn.closed or conn.loop is not loop:  # a connection of a loop that has ended
                continue
            conn.reused = True
            conn.begin(self.timeout)
            conn.transport.write(request)  # type: ignore[union-attr]
            try:
                while not conn.head_done and not conn.received:
                    await conn.wait()
                return conn
            except Timeout:
                conn.end()
                raise
            except TransportError:
                conn.end()
                if conn.received:
                    raise
                # Closed while it sat idle, before any byte of the answer came: the server closed
                # it as the request went out. One more try on a fresh connection; a model call is
                # an idempotent effect (ctx.llm), so sending it twice is allowed (RFC 9112 9.3.1).
                break
        conn = await self._connect(key)
        conn.begin(self.timeout)
        conn.transport.write(request)  # type: ignore[union-attr]
        return conn

    async def _connect(self, key: tuple) -> _Conn:
        tls, host, port = key
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self._idle, key), host, port,
                    ssl=(self._ssl or default_ssl_context()) if tls else None, server_hostname=host if tls else None,
                )
        except TimeoutError:
            raise Timeout(f"connecting to {host}:{port} took over {self.timeout:g} s") from None
        except OSError as exc:  # refused, unreachable, name not resolved, TLS refused
            raise TransportError(f"cannot connect to {host}:{port} ({type(exc).__name__}: {exc})") from None
        return conn

    def _release(self, conn: _Conn) -> None:
        if conn.closed:
            return
        if not (conn.done and conn.keep_alive and not conn.buf and conn.error is None):
            conn.transport.abort()  # type: ignore[union-attr]  # half-read or not reusable
            return
        conn.expiry = conn.loop.call_later(_KEEPALIVE_S, conn.transport.close)  # type: ignore[union-attr]
        self._idle.setdefault(conn.key, {})[conn] = None

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.expiry.cancel()  # type: ignore[union-attr]
                conn.transport.close()  # type: ignore[union-attr]
        self._idle.clear()
