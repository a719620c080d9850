"""Group commit, for every backend: one writer task per process folds every waiting append into
one transaction.

Each caller's append returns after the COMMIT that holds it. A caller cancelled before its turn
is skipped; one cancelled during the commit is simply not told. The backend's `commit` runs the
whole transaction as one call (a function on SQLite's thread, one async transaction on
PostgreSQL), so it is never left open.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable, Sequence

from ..chain import GENESIS, link
from ..errors import ConcurrencyError, StoreClosed, StoreError
from ..projection import PROJECTED

__all__ = ["Append", "Committed", "GroupWriter", "Heads", "Pending", "Plan", "plan", "shielded"]

_MAX_ROWS_PER_COMMIT = 20_000

Committed = list[tuple[str, int, int]]  # (run_id, last_seq before, last_seq after)
Heads = dict[str, tuple[int, bytes]]  # run -> (its last seq, that row's chain)


class Pending(asyncio.Future):
    """An append's future. Those who must not cancel the append by being cancelled (a driver
    whose view already holds it) wait through `shielded`: the writer sets their waiters in the
    same turn of the loop as the append (an asyncio.shield costs two callbacks and one turn more
    on every awaited commit)."""

    waiters: list[asyncio.Future] | None = None


def shielded(future: asyncio.Future) -> asyncio.Future:
    """A future of the caller's own that resolves as `future` does; cancelling it leaves `future`
    (and so its append) alone, as asyncio.shield would."""
    if not isinstance(future, Pending) or future.done():
        return asyncio.shield(future)
    waiter = future.get_loop().create_future()
    if future.waiters is None:
        future.waiters = [waiter]
    else:
        future.waiters.append(waiter)
    return waiter


def _tell(future: asyncio.Future, outcome: Any) -> None:
    """Resolve an append's future (unless its caller cancelled it) and then its waiters, in that
    order: the future's own callbacks (a driver's error check) run before any waiter wakes."""
    if not future.done():
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    waiters = getattr(future, "waiters", None)
    if waiters:
        for waiter in waiters:
            if waiter.done():
                continue
            if future.cancelled():
                waiter.cancel()
            elif isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)


class Append:
    __slots__ = ("run_id", "expected_seq", "rows", "events", "future", "claim")

    def __init__(
        self,
        run_id: str,
        expected_seq: int,
        rows: list[tuple],
        events: Sequence[Any],
        future: asyncio.Future,
        claim: tuple[str, int] | None,
    ) -> None:
        self.run_id = run_id
        self.expected_seq = expected_seq
        self.rows = rows
        self.events = events
        self.future = future
        self.claim = claim


class Plan:
    """What one group's transaction writes, checked against each run's last seq."""

    __slots__ = ("outcomes", "last", "before", "rows", "projecting", "heads")

    def __init__(self) -> None:
        self.outcomes: list[Any] = []  # per append: its new last seq, or its ConcurrencyError
        self.last: dict[str, int] = {}  # run -> last seq once committed
        self.before: dict[str, int] = {}  # run -> last seq before
        self.rows: list[tuple] = []
        self.projecting: list[Append] = []  # appends that change the runs/interrupts rows
        self.heads: Heads = {}  # run -> (last seq, chain) once committed

    def committed(self) -> Committed:
        return [(rid, old, self.last[rid]) for rid, old in self.before.items()]


# Event type -> whether it changes the run's row. isinstance against PROJECTED's nine msgspec
# classes costs 0.7 us an event (each goes through the metaclass's instance check): as much as
# the row's sha256. The answer depends on the type alone, so it is worked out once per type.
_PROJECTS: dict[type, bool] = {}


def _changes_run(events: Sequence[Any]) -> bool:
    for e in events:
        t = type(e)
        hit = _PROJECTS.get(t)
        if hit is None:
            hit = _PROJECTS[t] = issubclass(t, PROJECTED)
        if hit:
            return True
    return False


def plan(
    group: list[Append], known: dict[str, int], lookup: Callable[[str], int],
    heads: Heads, chain_at: Callable[[str, int], bytes | None],
) -> Plan:
    """Check each append's expected seq (against `known`, this writer's cache of last seqs, and
    `lookup(run)`, the table, where the cache does not say) and collect what to write, each row
    `(run_id, seq, ts_ns, type, step_id, body, crc, chain)` (a row given with its chain, from
    import or copy, keeps it). The chain continues from `heads`
    (this writer's cache of each run's last chain, kept like `known`) or, where that does not
    hold the row before, from `chain_at(run, seq)`, the table: one sha256 per row, no read.

    This runs inside the writer's transaction for every appended row, and nothing else runs
    meanwhile (every waiting caller waits for this commit), so its Python is kept lean: locals
    for the hot names, no generator per append."""
    p = Plan()
    outcomes, last, before, out, heads_now = p.outcomes, p.last, p.before, p.rows, p.heads
    add, link_ = out.append, link
    for a in group:
        rid = a.run_id
        actual = last.get(rid)
        if actual is None:
            actual = known.get(rid)
            if actual != a.expected_seq:
                actual = lookup(rid)
        if actual != a.expected_seq:
            outcomes.append(ConcurrencyError(rid, a.expected_seq, actual))
            continue
        head = heads_now.get(rid) or heads.get(rid)
        if actual == 0:
            chain = GENESIS
        elif head is not None and head[0] == actual:
            chain = head[1]
        else:
            # A row without a chain cannot happen after the migration's backfill; if one did,
            # chaining on from GENESIS leaves a break that `vigil verify` names.
            chain = chain_at(rid, actual) or GENESIS
        for r in a.rows:
            if len(r) == 7:
                chain = link_(chain, r[0], r[1], r[2], r[3], r[5])
                add(r + (chain,))
            elif len(r) > 7 and r[7] is not None:
                # Import and copy carry the source's stored chain as it is: a chain broken there
                # stays broken at the same seq here, never laundered into a fresh one.
                chain = r[7]
                add(r)
            else:
                chain = link_(chain, r[0], r[1], r[2], r[3], r[5])
                add(r[:7] + (chain,))
        seq = a.rows[-1][1]
        last[rid] = seq
        heads_now[rid] = (seq, chain)
        if rid not in before:
            before[rid] = actual
        if actual == 0 or _changes_run(a.events):
            p.projecting.append(a)
        outcomes.append(seq)
    return p


class GroupWriter:
    def __init__(
        self,
        commit: Callable[[list[Append]], Awaitable[tuple[list, Committed]]],
        on_commit: Callable[[Committed], None],
        *,
        refused: tuple[type[BaseException], ...],
        conflict: tuple[type[BaseException], ...],
        unavailable: tuple[type[BaseException], ...] = (),
    ) -> None:
        """`commit(group)` runs one transaction and returns one outcome per append (its new
        last seq, or the ConcurrencyError) and what was committed. `refused`: errors that fail
        the transaction but not the store (a value the database cannot take, a full disk);
        `conflict`: the unique (run_id, seq) index caught another process's append (a failed
        `commit` has dropped the cached last seqs of its group, so the retry checks the table);
        `unavailable`: the database cannot be reached: the whole group fails at once with the
        reason (retrying each append alone would only wait out the same timeout again), and the
        writer goes on, so appends succeed again once the database is back."""
        self._commit_fn = commit
        self._on_commit = on_commit
        self._refused = refused
        self._conflict = conflict
        self._unavailable = unavailable
        self._queue: deque[Append] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="vigil-writer")

    def submit(
        self,
        run_id: str,
        expected_seq: int,
        rows: list[tuple],
        events: Sequence[Any],
        claim: tuple[str, int] | None = None,
    ) -> asyncio.Future[int]:
        """Queue an append; the future resolves to the run's new last seq after the commit."""
        if self._closing:
            raise StoreClosed("the store is closed")
        future = Pending(loop=self._loop)
        self._queue.append(Append(run_id, expected_seq, rows, events, future, claim))
        self._wake.set()
        return future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await self._task

    async def _commit(self, group: list[Append], *, again: bool = True) -> tuple[list, Committed]:
        try:
            return await self._commit_fn(group)
        except self._unavailable as exc:
            return [StoreError(f"append to run {a.run_id} failed: {exc}") for a in group], []
        except self._refused as exc:
            if len(group) == 1:
                if again and isinstance(exc, self._conflict):
                    # UNIQUE(run_id, seq): another process appended since this writer last did.
                    # Its cached last seq is dropped now; checked against the table this time,
                    # the stale caller gets a ConcurrencyError.
                    return await self._commit(group, again=False)
                return [StoreError(f"append to run {group[0].run_id} failed: {exc}")], []
        # One bad batch must not fail the others that shared its transaction: retry each alone.
        outcomes: list = []
        committed: Committed = []
        for a in group:
            one, done = await self._commit([a])
            outcomes.extend(one)
            committed.extend(done)
        return outcomes, committed

    async def _idle(self) -> bool:
        """With nothing queued: wait for an append; False once closing instead."""
        if self._closing:
            return False
        self._wake.clear()
        await self._wake.wait()
        # One turn of the loop first: tasks made ready with the first append (a driver just
        # started, callers just woken) queue theirs into the same commit.
        await asyncio.sleep(0)
        return True

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if not await self._idle():
                    return
                continue
            group: list[Append] = []
            n = 0
            while self._queue and n < _MAX_ROWS_PER_COMMIT:
                a = self._queue.popleft()
                if not a.future.cancelled():
                    group.append(a)
                    n += len(a.rows)
                else:
                    _tell(a.future, None)  # its waiters are cancelled with it
            if not group:
                continue
            try:
                outcomes, committed = await self._commit(group)
            except BaseException:
                for a in group:
                    _tell(a.future, StoreClosed("the store closed during a commit"))
                raise
            for a, outcome in zip(group, outcomes):
                _tell(a.future, outcome)
            if committed:
                self._on_commit(committed)
            # Let the callers just woken append their next batch before the next group forms;
            # without this, 100 busy runs split into two half-size groups and twice the fsyncs.
            await asyncio.sleep(0)
