"""The runtime: starts runs, drives the runs this process owns, applies decisions and signals,
adopts runs whose owner died. One per process; the console and the headless CLI both host one.

    async with Runtime(store, registry) as rt:
        run_id = await rt.start("support", {"ticket": "..."})
        await rt.settle()
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

from . import scopes
from ..artifacts import threshold
from ..errors import InterruptRefused, NotFound, StoreError, VigilError
from ..events import InterruptRaised, InterruptResolved, RunAdopted, RunCompleted, RunStarted
from ..graph import START
from ..ids import new_run_id
from ..owner import owner_alive, owner_id
from ..projection import TERMINAL, RunInfo
from ..registry import Registry
from ..state import apply
from ..store import Store
from ..tools import close_tools
from .decisions import DECISIONS, Decisions, _recordable, choice_problem
from .driver import RunDriver
from .fork import fork_run
from .loops import Loops
from .runview import RunView

__all__ = ["Runtime", "InterruptRefused", "DECISIONS", "choice_problem"]

Listener = Callable[[str, str, Any], None]  # (what, run_id, data)


class Runtime(Decisions, Loops):
    """Hosts the run drivers of this process (it is their Host, see host.py)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        approvals: str = "ask",
        auto_decide: Callable[[InterruptRaised], InterruptResolved | None] | None = None,
        lease_seconds: float = 15.0,
        signal_interval: float = 0.1,
    ) -> None:
        self.store = store
        self.registry = registry
        # Read (and refused if bad) now, not after an effect ran: a bad value found then left
        # a request with no outcome. Set it to another number of bytes to change it.
        self.artifact_threshold = threshold()
        self.approvals = approvals
        self.auto_decide = auto_decide
        self.owner = owner_id()
        self.drivers: dict[str, RunDriver] = {}
        self._listeners: list[Listener] = []
        self._lease_ns = int(lease_seconds * 1e9)
        self._signal_interval = signal_interval
        self._loops: list[asyncio.Task] = []
        self._chores: set[asyncio.Task] = set()
        # Runs with a cancel, or a decision, between its checks and its commit: the other is
        # refused meanwhile, so a race has one winner and nothing lands after RunCancelled.
        self._cancelling: set[str] = set()
        self._deciding: dict[str, int] = {}
        self.draining = False  # drivers stop at their next step boundary
        self.max_active: int | None = None  # runs driven at once (a worker's --concurrency)
        self._queued: dict[str, RunDriver] = {}  # ready to go on, waiting for a slot
        self._releasing: dict[str, asyncio.Task] = {}

    async def __aenter__(self) -> "Runtime":
        self._loops = [
            asyncio.create_task(self._signal_loop(), name="vigil-signals"),
            asyncio.create_task(self._lease_loop(), name="vigil-leases"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def drain(self, grace: float, *, release: bool = True) -> int:
        """Let every driven run finish the step it is in, then stop driving and release them all
        (another process adopts them at once). Returns how many were still mid-step after
        `grace` seconds (those are cancelled by close(): their in-flight effects are in doubt)."""
        self.draining = True
        tasks = [d.task for d in self.drivers.values() if d.task and not d.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        left = sum(1 for t in tasks if not t.done())
        await self.close(release=release)
        return left

    async def close(self, *, release: bool = True) -> None:
        """Stop driving (runs stay as they are, resumable) and give up ownership at once (or,
        with release=False, leave the leases to lapse: adopted later, as after a crash)."""
        for task in self._loops:
            task.cancel()
        running = [d.task for d in self.drivers.values() if d.task and not d.task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*self._loops, *running, *self._chores, return_exceptions=True)
        # Tools' servers stop with the runs that used them (the next call would start them again).
        await close_tools(t for graph in self.registry for t in graph.tools)
        # Named before cancelling: a cancelled release task takes itself out of _releasing (its
        # done callback), and a lost run must still be released here, not stay ours.
        releasing = dict(self._releasing)
        for task in releasing.values():
            task.cancel()
        await asyncio.gather(*releasing.values(), return_exceptions=True)
        mine = [*(self.drivers if release else ()), *releasing]
        self._releasing.clear()
        if mine and not self.store.readonly:
            try:
                await self.store.release(mine, self.owner)
            except VigilError as exc:
                # A full disk, say: this process is going, and a dead owner's runs are free at
                # once on this host (elsewhere when the lease, no longer renewed, runs out).
                self._tell("error", "", f"cannot release {len(mine)} runs: {exc}")
        self.drivers.clear()

    # events for listeners (the console, the headless printer) ----------------------------

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _tell(self, what: str, run_id: str, data: Any = None) -> None:
        # Outside any node's call scope: a task a listener starts (a console worker) is not the
        # node's, takes no call position and is not waited for when the step ends.
        token = scopes.outside()
        try:
            for listener in self._listeners:
                listener(what, run_id, data)
        finally:
            scopes.leave(token)

    def stream(self, run_id: str, action_id: str, token: str) -> None:
        """Model tokens, live and never persisted (only the final message is)."""
        self._tell("token", run_id, (action_id, token))

    def raised(self, run_id: str, raised: InterruptRaised) -> None:
        self._tell("interrupt", run_id, raised)

    def auto_resolve(self, raised: InterruptRaised) -> InterruptResolved | None:
        return self.auto_decide(raised) if self.auto_decide else None

    def lost(self, run_id: str, why: str) -> None:
        """The driver of `run_id` stopped: its appends failed (a full disk, an I/O error) or
        another writer went ahead. The run is let go, so another process can adopt it."""
        self.drivers.pop(run_id, None)
        self._tell("lost", run_id, why)
        if not self.store.readonly and run_id not in self._releasing:
            task = asyncio.create_task(self._release_lost(run_id), name=f"vigil-release-{run_id}")
            self._releasing[run_id] = task
            task.add_done_callback(lambda _: self._releasing.pop(run_id, None))

    async def _release_lost(self, run_id: str) -> None:
        """Release a lost run, retrying until the store takes the write (it may be as full as
        it was when the run was lost)."""
        delay = 0.05
        while True:
            try:
                await self.store.release([run_id], self.owner)
                return
            except VigilError as exc:
                self._tell("error", run_id, f"cannot release run {run_id} yet: {exc}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def finished(self, driver: RunDriver) -> None:
        run_id = driver.run_id
        self.drivers.pop(run_id, None)
        self._tell("finished", run_id, driver.view.terminal)  # its owner was cleared with it
        started = driver.view.started
        if started is not None and started.lineage == "child" and started.parent_run_id:
            self._chore(self._wake(started.parent_run_id))

    def _chore(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    # starting and driving ------------------------------------------------------------------

    def _started(
        self, graph_name: str, input: Any, labels: dict[str, str] | None,
        parent: tuple[str, int] | None = None, lineage: str | None = None,
    ) -> tuple[Any, RunStarted]:
        graph = self.registry.get(graph_name)
        input = graph.check_input(_recordable(input, "the input"))
        if input is None:
            update = ()
        else:
            update = graph.patches(input if isinstance(input, dict) else {"input": input})
        state: dict[str, Any] = {}
        apply(state, update)
        return graph, RunStarted(
            graph=graph.name, graph_version=graph.version, input=input, update=update,
            parent_run_id=parent[0] if parent else None, parent_seq=parent[1] if parent else None,
            lineage=lineage, labels=labels or {}, start_at=graph.successors(START, state),
        )

    async def start(
        self,
        graph_name: str,
        input: Any = None,
        *,
        labels: dict[str, str] | None = None,
        run_id: str | None = None,
        parent: tuple[str, int] | None = None,
        lineage: str | None = None,
    ) -> str:
        graph, started = self._started(graph_name, input, labels, parent, lineage)
        run_id = run_id or new_run_id()
        driver = RunDriver(self, graph, RunView(run_id))
        future = self.store.submit(
            run_id, [started], expected_seq=0, claim=(self.owner, self._lease_ns)
        )
        driver.view.feed(1, started)
        driver.adopt_pending(future)
        self.drivers[run_id] = driver
        driver.start()  # its first steps queue up behind RunStarted while that commits
        try:
            await driver.flush_until(future)
        except VigilError:
            raise
        except Exception as exc:  # the driver lost the log (a full disk)
            if driver.task is not None:
                driver.task.cancel()
            self.lost(run_id, str(exc))
            raise StoreError(str(exc)) from None
        return run_id

    async def enqueue(self, graph_name: str, input: Any = None, *, labels: dict[str, str] | None = None) -> str:
        """Record a run for a worker to pick up (no owner): nothing is driven here."""
        _, started = self._started(graph_name, input, labels)
        run_id = new_run_id()
        await self.store.append(run_id, [started], expected_seq=0)
        return run_id

    async def new_child_id(self, parent_run_id: str) -> str:
        return new_run_id()

    async def child_status(self, run_id: str) -> RunInfo | None:
        try:
            return await self.store.run(run_id)
        except NotFound:
            return None

    async def child_output(self, run_id: str) -> Any:
        last = await self.store.last_seq(run_id)
        records = await self.store.events(run_id, last, last)
        event = records[0].event if records else None
        return event.output if isinstance(event, RunCompleted) else None

    def active(self) -> int:
        return sum(1 for d in self.drivers.values() if d.task is not None and not d.task.done())

    def queued(self) -> int:
        return len(self._queued)

    def may_drive(self, driver: RunDriver) -> bool:
        """Whether a run may start driving now; if not, it is queued for the next free slot
        (every restart counts: a decision, a wake, a child run, not only an adoption)."""
        if self.max_active is None or self.active() < self.max_active:
            self._queued.pop(driver.run_id, None)
            return True
        self._queued[driver.run_id] = driver
        return False

    def slot_freed(self, _task: asyncio.Task) -> None:
        while self._queued and (self.max_active is None or self.active() < self.max_active):
            run_id, driver = next(iter(self._queued.items()))
            del self._queued[run_id]
            if self.drivers.get(run_id) is driver and not self.draining:
                driver.start()

    async def settle(self, run_ids: set[str] | None = None) -> None:
        """Wait until no run (of `run_ids`) is being driven or queued: each has ended or waits."""
        looked = False
        while True:
            tasks = [
                d.task for rid, d in self.drivers.items()
                if d.task and not d.task.done() and (run_ids is None or rid in run_ids)
            ]
            chores = list(self._chores)
            if not tasks and not chores:
                if not any(run_ids is None or rid in run_ids for rid in self._queued):
                    return
                await asyncio.sleep(0)  # a slot was just freed: its callback starts the next
                continue
            if not looked:
                # One turn first: a driver woken by the same commit as the caller (start,
                # resolve) ends in this turn, and most settles then need no asyncio.wait
                # (its waiter and a callback on every task, and a turn more to be woken).
                looked = True
                await asyncio.sleep(0)
                continue
            await asyncio.wait(tasks + chores)

    async def _load(self, run_id: str) -> RunDriver:
        info = await self.store.run(run_id)
        graph = self.registry.get(info.graph)
        view = RunView(run_id)
        async for record in self.store.iter_events(run_id):
            view.feed(record.seq, record.event)
        if view.problems:
            seq, what = view.problems[0]
            raise VigilError(f"run {run_id} cannot be driven: seq {seq} is {what}")
        return RunDriver(self, graph, view)

    async def adopt(self, run_id: str, *, drive: bool = True) -> RunDriver | None:
        """Own and drive a run whose owner is gone (or us). None if someone alive owns it."""
        if run_id in self.drivers:
            return self.drivers[run_id]
        info = await self.store.run(run_id)
        if info.status in TERMINAL:
            return None
        if info.owner != self.owner and owner_alive(info.owner, info.lease_until_ns, info.seen_ns):
            return None
        if not await self.store.claim(run_id, self.owner, self._lease_ns, info.owner):
            return None
        try:
            driver = await self._load(run_id)
            if info.owner != self.owner and (drive or info.owner):
                # Taking a run over is part of its history: who drives it from here, after whom.
                await driver.emit(RunAdopted(owner=self.owner, previous=info.owner))
        except BaseException:
            await self.store.release([run_id], self.owner)
            raise
        self.drivers[run_id] = driver
        if drive:
            driver.start()
        return driver

    async def orphans(self, *, order: str = "newest") -> AsyncIterator[RunInfo]:
        """Running or waiting runs nobody drives whose graph is registered here, page by page:
        what `vigil resume`, a worker and the console's offer to adopt all look for."""
        for status in ("running", "waiting"):
            offset = 0
            while batch := await self.store.runs(status=status, limit=500, offset=offset, order=order):
                offset += len(batch)
                for info in batch:
                    if (info.run_id not in self.drivers and info.graph in self.registry
                            and not owner_alive(info.owner, info.lease_until_ns, info.seen_ns)):
                        yield info

    async def adopt_or_tell(self, run_id: str) -> bool:
        """Adopt one orphan; a run that cannot be driven is told to listeners, never raised:
        one bad run stops no other."""
        try:
            return await self.adopt(run_id) is not None
        except VigilError as exc:
            self._tell("error", run_id, str(exc))
            return False

    async def resume(self, run_id: str | None = None) -> list[str]:
        """Adopt orphaned runs (all of them, or one) whose graph is registered here."""
        if run_id is not None:
            return [run_id] if await self.adopt(run_id) else []
        return [info.run_id async for info in self.orphans() if await self.adopt_or_tell(info.run_id)]

    async def _wake(self, run_id: str) -> None:
        driver = self.drivers.get(run_id)
        if driver is not None:
            driver.start()
        elif (await self.store.run(run_id)).status not in TERMINAL:  # an ended parent needs none
            await self.store.send_signal(run_id, "wake", {}, self.owner)

    async def fork(self, run_id: str, at_seq: int) -> str:
        """A new run (lineage: fork) that goes on from exactly where `run_id` was at `at_seq`."""
        return await fork_run(self.store, self.registry, run_id, at_seq)
