"""The SQLite backend's live channel: one unix socket per owner process. Subscribers connect,
say which runs they want (`Want`), and get only those runs' deltas. A subscriber that does not
read is dropped once HIGH_WATER bytes wait for it: the owner never waits for anyone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
import msgspec

from .paths import addressable, ensure_dir, live_dir, socket_path
from .wire import Delta, Hello, Want, decode, encode

__all__ = ["UnixServer", "connect", "want_line", "HIGH_WATER", "clean_stale"]

HIGH_WATER = 256 * 1024  # bytes waiting for one subscriber before it is dropped
_LINE_LIMIT = 1 << 20


class _Sub:
    __slots__ = ("writer", "runs")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.runs: set[str] = set()


def clean_stale(directory: Path, keep: Path | None = None) -> int:
    """Remove the sockets nobody listens on (their owner died without removing them)."""
    removed = 0
    try:
        entries = list(directory.glob("*.sock"))
    except OSError:
        return 0
    for path in entries:
        if path == keep:
            continue
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.2)
        try:
            with addressable(path) as name:
                probe.connect(name)
        except ConnectionRefusedError:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
        except OSError:
            pass  # busy, vanished, not ours: leave it
        finally:
            probe.close()
    return removed


class UnixServer:
    def __init__(self, db: Path | str, owner: str) -> None:
        self.owner = owner
        self.dir = live_dir(db)
        self.path = socket_path(db, owner)
        self.subs: set[_Sub] = set()
        self.wanted: set[str] = set()  # every run some subscriber asked for: the rest is not sent
        self.dropped = 0  # subscribers dropped for not reading (tests, bench)
        self._server: asyncio.base_events.Server | None = None
        self._hello = encode(Hello(owner=owner)) + b"\n"

    async def start(self) -> bool:
        """False when there can be no channel here (a read-only directory, someone else's)."""
        for _ in range(3):
            if not ensure_dir(self.dir):
                return False
            clean_stale(self.dir, keep=self.path)
            try:
                with addressable(self.path) as name:
                    self._server = await asyncio.start_unix_server(self._serve, path=name, limit=_LINE_LIMIT)
                os.chmod(self.path, 0o600)
                return True
            except FileNotFoundError:
                # Another owner closing removed the directory (it looked empty) after our mkdir:
                # make it again rather than go without a channel.
                continue
            except OSError:
                return False
        return False

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for sub in list(self.subs):
            sub.writer.transport.abort()
        self.subs.clear()
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self.dir.rmdir()  # only when no other owner's socket is left in it
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sub = _Sub(writer)
        writer.transport.write(self._hello)
        self.subs.add(sub)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    message = decode(line)
                except msgspec.DecodeError:
                    break  # not one of ours: hang up
                if isinstance(message, Want):
                    sub.runs = set(message.runs)
                    self._rewant()
        except (OSError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self.subs.discard(sub)
            self._rewant()
            writer.transport.abort()

    def _rewant(self) -> None:
        self.wanted = set().union(*(s.runs for s in self.subs)) if self.subs else set()

    async def send(self, deltas: list[Delta]) -> bool:
        """Write each delta to the subscribers that want its run, without ever waiting."""
        if not self.subs:
            return True
        lines: dict[str, list[bytes]] = {}
        for delta in deltas:
            lines.setdefault(delta.run, []).append(encode(delta) + b"\n")
        for sub in list(self.subs):
            transport = sub.writer.transport
            if transport.is_closing():
                self.subs.discard(sub)
                self._rewant()
                continue
            mine = [line for run in sub.runs & lines.keys() for line in lines[run]]
            if not mine:
                continue
            if transport.get_write_buffer_size() > HIGH_WATER:
                # It stopped reading: drop it rather than buffer without end (it reconnects,
                # and its viewer starts the text again from the next token).
                self.dropped += 1
                self.subs.discard(sub)
                self._rewant()
                transport.abort()
                continue
            transport.write(b"".join(mine))
        return True


async def connect(path: Path, owner: str, timeout: float = 2.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open an owner's socket and check it is that owner answering; OSError if not."""
    with addressable(path) as name:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(name, limit=_LINE_LIMIT), timeout)
    try:
        hello = decode(await asyncio.wait_for(reader.readline(), timeout))
    except (msgspec.DecodeError, asyncio.TimeoutError):
        hello = None
    except BaseException:
        # a reset, or the follower cancelled (its owner went away): the socket is closed here,
        # not left to the garbage collector with its descriptor
        writer.transport.abort()
        raise
    if not isinstance(hello, Hello) or hello.owner != owner:
        writer.transport.abort()
        raise ConnectionRefusedError(f"{path} is not {owner}'s live socket")
    return reader, writer


def want_line(runs: set[str]) -> bytes:
    return encode(Want(runs=sorted(runs))) + b"\n"
