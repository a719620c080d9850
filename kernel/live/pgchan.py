"""The PostgreSQL backend's live channel: NOTIFY on a channel per run (`vigil_live_<hash>`), so
a console on any host that reaches the database sees the tokens, with no port to open and
nothing stored. Only the listeners of a run's channel get its deltas (the server routes them)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Callable

import msgspec

from .wire import Delta, Queue, decode, split

__all__ = ["PgSink", "PgListener", "channel", "PAYLOAD_LIMIT"]

# NOTIFY refuses payloads of 8000 bytes or more; a little room for safety
PAYLOAD_LIMIT = 7900


def channel(run_id: str) -> str:
    # hashed: an identifier of fixed shape, whatever a run id holds (LISTEN takes no parameter)
    return "vigil_live_" + hashlib.sha256(run_id.encode()).hexdigest()[:24]


async def _connect(dsn: str, name: str):
    import psycopg

    return await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, application_name=f"vigil {name}", connect_timeout=5
    )


class PgSink:
    """Sends batches of deltas in one statement. A failure drops the batch (the publisher marks
    the next deltas of those actions `reset`) and reconnects on the next one."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = None
        self.wanted = None  # the server knows who listens; every streaming run is sent
        self._n = 0

    async def start(self) -> bool:
        # connected by the first batch: a process that never streams costs the server nothing
        return True

    async def send(self, deltas: list[Delta]) -> bool:
        import psycopg

        channels, payloads = [], []
        for delta in deltas:
            pieces = split(msgspec.structs.replace(delta, n=self._n), PAYLOAD_LIMIT)
            self._n += len(pieces)
            channels += [channel(delta.run)] * len(pieces)
            payloads += [p.decode() for p in pieces]
        try:
            if self.conn is None or self.conn.closed:
                self.conn = await _connect(self.dsn, "live")
            # one round trip per batch; pg_notify runs in row order, and a transaction's
            # notifications are delivered in the order sent
            await self.conn.execute(
                "SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS t(c, p)", (channels, payloads)
            )
        except (psycopg.Error, OSError):
            # a full NOTIFY queue (a listener that never reads), a lost connection: drop it
            if self.conn is not None:
                await self.conn.close()
            self.conn = None
            return False
        return True

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


class PgListener:
    """LISTENs on the channels of the runs `wanted()` names, re-read every `interval` s."""

    def __init__(
        self, dsn: str, deliver: Callable[[Delta], None], lost: Callable[[set[str]], None], interval: float = 0.2
    ) -> None:
        self.dsn = dsn
        self.deliver = deliver
        self.lost = lost
        self.interval = interval
        self.listening: set[str] = set()  # runs LISTENed for now (tests wait on it)

    async def run(self, wanted: Callable[[], set[str]]) -> None:
        import psycopg

        while True:
            listening: set[str] = set()
            if not wanted():  # no pane open: no connection held
                await asyncio.sleep(self.interval)
                continue
            try:
                conn = await _connect(self.dsn, "live listener")
                try:
                    while True:
                        want = set(wanted())
                        for run in want - listening:
                            await conn.execute(f"LISTEN {channel(run)}")
                        for run in listening - want:
                            await conn.execute(f"UNLISTEN {channel(run)}")
                        listening = self.listening = want
                        if not want:
                            break  # every pane closed: give the connection back
                        async for note in conn.notifies(timeout=self.interval):
                            try:
                                delta = decode(note.payload)
                            except msgspec.DecodeError:
                                continue  # someone else's NOTIFY on a name like ours
                            if isinstance(delta, (Delta, Queue)) and delta.run in listening:
                                self.deliver(delta)
                finally:
                    await conn.close()
            except (psycopg.Error, OSError):
                self.listening = set()
                if listening:
                    self.lost(listening)  # what was sent meanwhile is gone: start the text again
                await asyncio.sleep(0.5)
