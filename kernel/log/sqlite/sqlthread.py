"""One SQLite connection owned by one thread; whole functions run there, one at a time.

Why not one statement per hop (as aiosqlite does): a group commit is BEGIN IMMEDIATE, several
statements and COMMIT. Sent statement by statement, a task cancelled between two of them would
leave the transaction open and the write lock held. Sent as one function, it runs to the end or
not at all, whatever happens to the awaiting task, and costs one thread hop instead of five.

The thread is its own, not a ThreadPoolExecutor's: a hop through run_in_executor goes through a
concurrent Future, its condition variable, the executor's locks and a second future chained onto
the first; here the thread sets the caller's asyncio future through call_soon_threadsafe, once
(every awaited commit is a hop, bench/NOTES.md "Chain and interrupt+resume").
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import weakref
from typing import Any, Callable, TypeVar

from ...errors import StoreError

__all__ = ["SqlThread"]

T = TypeVar("T")

_STOP = None
_live: "weakref.WeakSet[SqlThread]" = weakref.WeakSet()


def _stop_all() -> None:
    # At interpreter exit, before non-daemon threads are joined (as concurrent.futures does for
    # its workers): what is queued still runs, then each thread ends.
    for thread in list(_live):
        thread._jobs.put(_STOP)


threading._register_atexit(_stop_all)


def _deliver(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class SqlThread:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], name: str, *, raw_errors: bool = True
    ) -> None:
        """`raw_errors=False`: SQLite's errors (a malformed page, an I/O error) come out as
        StoreError; the writer keeps them raw, to tell a constraint from a full disk."""
        self._connect = connect
        self._raw_errors = raw_errors
        self._name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            fn, args, future, loop = job
            if future.cancelled():  # its caller gave up before its turn (run_in_executor's rule)
                continue
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the caller, as an executor's future would
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_deliver, future, result, error)
            except RuntimeError:
                pass  # the loop has closed: nobody is waiting any more
            del job, fn, args, future, result, error

    def _send(self, fn: Callable[..., T], args: tuple) -> asyncio.Future[T]:
        if self._closed:  # as the executor's submit after shutdown: never a wait for nothing
            raise RuntimeError("cannot schedule new futures after shutdown")
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name)
            self._thread.start()
            _live.add(self)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, args, future, loop))
        return future

    async def start(self) -> None:
        self._conn = await self._send(self._connect, ())

    def _run(self, fn: Callable[..., T], args: tuple) -> T:
        return fn(self._conn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` in the thread. Cancelling the caller never interrupts it."""
        try:
            return await self._send(self._run, (fn, args))
        except sqlite3.Error as exc:
            if self._raw_errors:
                raise
            raise StoreError(f"the database cannot be read: {exc}") from None

    async def close(self) -> None:
        if self._conn is not None:
            await self.call(lambda conn: conn.close())
            self._conn = None
        self._closed = True
        if self._thread is not None:
            self._jobs.put(_STOP)
            _live.discard(self)
