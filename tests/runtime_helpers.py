"""Running graphs against a real store in tests."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from kernel.graph import Graph
from kernel.registry import Registry
from kernel.engine.runtime import Runtime
from kernel.store import Store


def registry(*graphs: Graph) -> Registry:
    reg = Registry()
    for g in graphs:
        reg.add(g)
    return reg


@asynccontextmanager
async def runtime(path: Path, *graphs: Graph, **kw):
    async with await Store.open(path) as store:
        async with Runtime(store, registry(*graphs), **kw) as rt:
            yield store, rt


async def events_of(store: Store, run_id: str) -> list:
    return [r.event for r in await store.events(run_id, limit=100_000)]


async def types_of(store: Store, run_id: str) -> list[str]:
    return [type(e).__name__ for e in await events_of(store, run_id)]


def pending(rt: Runtime, run_id: str):
    return rt.drivers[run_id].view.pending_interrupts()


def run(coro):
    return asyncio.run(coro)


async def stored_bytes(db) -> bytes:
    """Everything the log holds as stored. SQLite: the database file and its WAL, read while the
    store is open. PostgreSQL: every value of every vigil table, bytea as its bytes, text as
    UTF-8 (the logical content; the server's own files are its business)."""
    if isinstance(db, Path):
        return db.read_bytes() + db.with_name(db.name + "-wal").read_bytes()
    import psycopg

    out = bytearray()
    async with await psycopg.AsyncConnection.connect(db) as conn:
        for table in ("events", "runs", "snapshots", "signals", "interrupts", "meta"):
            async for row in await conn.execute(f"SELECT * FROM vigil.{table}"):
                for value in row:
                    out += value if isinstance(value, bytes) else str(value).encode()
                    out += b"\n"
    return bytes(out)
