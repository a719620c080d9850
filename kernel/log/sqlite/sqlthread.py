"""One SQLite connection owned by one thread; whole functions run there, one at a time.

Why not one statement per hop (as aiosqlite does): a group commit is BEGIN IMMEDIATE, several
statements and COMMIT. Sent statement by statement, a task cancelled between two of them would
leave the transaction open and the write lock held. Sent as one function, it runs to the end or
not at all, whatever happens to the awaiting task, and costs one thread hop instead of five.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from ...errors import StoreError

__all__ = ["SqlThread"]

T = TypeVar("T")


class SqlThread:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], name: str, *, raw_errors: bool = True
    ) -> None:
        """`raw_errors=False`: SQLite's errors (a malformed page, an I/O error) come out as
        StoreError; the writer keeps them raw, to tell a constraint from a full disk."""
        self._connect = connect
        self._raw_errors = raw_errors
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def start(self) -> None:
        self._conn = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._connect
        )

    def _run(self, fn: Callable[..., T], args: tuple) -> T:
        return fn(self._conn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` in the thread. Cancelling the caller never interrupts it."""
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, fn, args
            )
        except sqlite3.Error as exc:
            if self._raw_errors:
                raise
            raise StoreError(f"the database cannot be read: {exc}") from None

    async def close(self) -> None:
        if self._conn is not None:
            await self.call(lambda conn: conn.close())
            self._conn = None
        self._executor.shutdown(wait=False)
