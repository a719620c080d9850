"""The CLI's commands that drive runs in this process: run, demo --headless, resume, fork. The
process owns what it starts or adopts and prints the runs' events as they are committed."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from kernel.engine.runtime import Runtime
from kernel.errors import NotFound, VigilError
from kernel.events import InterruptRaised, InterruptResolved
from kernel.gctune import tune_gc_for_runs
from kernel.live.publish import publishing
from kernel.owner import current_actor
from kernel.store import Store

from .cmdargs import _parse_json, _registry
from .commands import _db_path, _out
from .format import event_line
from .interrupttext import _how_to_answer


class Printer:
    """Prints the events of some runs (and of their children) as they are committed."""

    def __init__(self, store: Store, runs: set[str]) -> None:
        self.store = store
        self.runs = runs
        self.shown: set[str] = set()

    async def follow(self, after: int) -> None:
        async for batch in self.store.tail(after):
            for record in batch:
                event = record.event
                parent = getattr(event, "parent_run_id", None)
                if getattr(event, "lineage", None) == "child" and parent in self.runs:
                    self.runs.add(record.run_id)
                if record.run_id in self.runs:
                    _out(f"{record.run_id[-6:]} {event_line(record)}")
                    if isinstance(event, InterruptRaised) and event.interrupt_id not in self.shown:
                        self.shown.add(event.interrupt_id)
                        _out(_how_to_answer(record.run_id, event))


async def cmd_run(args: argparse.Namespace) -> int:
    registry = _registry(args)
    registry.get(args.graph)
    if args.input:
        value = _parse_json(args.input, "--input")
    else:  # a demo graph runs on its sample input when none is given
        from kernel.demos import samples

        value = samples().get(args.graph)
    if args.queue:
        async with await Store.open(_db_path(args)) as store:
            run_id = await Runtime(store, registry).enqueue(args.graph, value, labels=dict(args.label or []))
        _out(f"run {run_id} ({args.graph}) queued; a `vigil worker` with this graph picks it up")
        return 0
    async with await Store.open(_db_path(args)) as store:
        async with Runtime(store, registry) as runtime, publishing(runtime, store):  # tokens to viewers
            lost: list[tuple[str, str]] = []
            runtime.listen(lambda what, rid, why: lost.append((rid, why)) if what == "lost" else None)
            start = await store.head()
            try:
                run_id = await runtime.start(args.graph, value, labels=dict(args.label or []))
            except VigilError:
                if lost:
                    await _stopped(store, *lost[0])
                raise
            _out(f"run {run_id} ({args.graph}) started; Ctrl-C detaches, `vigil resume {run_id}` picks it up")
            printer = Printer(store, {run_id})
            follow = asyncio.create_task(printer.follow(start))
            try:
                while (info := await store.run(run_id)).status not in ("completed", "failed", "cancelled", "diverged"):
                    if lost:
                        await _stopped(store, *lost[0])
                    await asyncio.sleep(0.1)
                await asyncio.sleep(store.poll_interval * 2)
            finally:
                follow.cancel()
    _out(f"run {run_id}: {info.status}" + (f" ({info.error})" if info.error else ""))
    return 0 if info.status == "completed" else 1


async def _stopped(store: Store, run_id: str, why: str) -> None:
    """This process cannot drive the run on (a full disk, say) and has let it go."""
    try:
        await store.run(run_id)
    except NotFound:
        raise VigilError(why) from None
    raise VigilError(f"{why}; the run stopped here, `vigil resume {run_id}` continues it")


def _auto(mode: str):
    actor = current_actor()

    def decide(raised: InterruptRaised) -> InterruptResolved | None:
        if mode == "none":
            return None
        if raised.kind == "approval":
            decision, value = ("approve", None) if mode == "all" else ("reject", "rejected by the demo policy")
        elif raised.kind == "input":
            decision, value = "answer", (raised.payload or {}).get("default")
        else:
            decision, value = "retry", None
        return InterruptResolved(
            interrupt_id=raised.interrupt_id, decision=decision, value=value,
            payload_hash=raised.payload_hash, actor=actor,
        )

    return decide


async def cmd_demo(args: argparse.Namespace) -> int:
    from kernel.demos import samples

    registry = _registry(args)
    mode = args.approve
    async with await Store.open(_db_path(args)) as store:
        async with Runtime(store, registry, auto_decide=_auto(mode)) as runtime:
            run_ids = []
            for _ in range(max(1, args.runs)):
                for graph, value in samples().items():
                    run_ids.append(await runtime.start(graph, value, labels={"demo": "yes"}))
            started = time.perf_counter()
            await runtime.settle()
            elapsed = time.perf_counter() - started
            infos = [await store.run(r) for r in run_ids]
    _out(f"{'RUN':<16}  {'GRAPH':<10}  {'STATUS':<9}  {'EVENTS':>6}  PENDING")
    for info in infos:
        _out(f"{info.run_id:<16}  {info.graph:<10}  {info.status:<9}  {info.last_seq:>6}  {info.pending or '-'}")
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.status] = counts.get(info.status, 0) + 1
    _out(f"{len(infos)} runs in {elapsed:.1f}s: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if counts.get("waiting"):
        _out("approve from a shell: `vigil approve RUN` shows what a run waits on; then "
             "`vigil approve RUN --interrupt ID --hash HASH` and `vigil resume`")
    return 0


def _print_errors(what: str, run_id: str, data: Any) -> None:
    if what == "error":
        print(f"vigil: {data}", file=sys.stderr)


async def cmd_resume(args: argparse.Namespace) -> int:
    async with await Store.open(_db_path(args)) as store:
        async with Runtime(store, _registry(args)) as runtime, publishing(runtime, store):
            tune_gc_for_runs()  # `vigil resume` may drive every run left: a worker's settings
            target = await store.resolve(args.run) if args.run else None
            runtime.listen(_print_errors)
            adopted = await runtime.resume(target)
            if not adopted:
                _out("nothing to resume: every running or waiting run has a live owner, or its graph is not registered here")
                return 0
            printer = Printer(store, set(adopted))
            follow = asyncio.create_task(printer.follow(await store.head()))
            try:
                await runtime.settle()
                await asyncio.sleep(store.poll_interval * 2)
            finally:
                follow.cancel()
            for run_id in adopted:
                info = await store.run(run_id)
                _out(f"run {run_id}: {info.status}" + (f", {info.pending} waiting for a human" if info.pending else ""))
    return 0


async def cmd_fork(args: argparse.Namespace) -> int:
    async with await Store.open(_db_path(args)) as store:
        async with Runtime(store, _registry(args)) as runtime:
            run_id = await store.resolve(args.run)
            new_id = await runtime.fork(run_id, args.at)
            _out(f"forked {run_id}@{args.at} as {new_id}")
            await runtime.adopt(new_id)
            await runtime.settle()
            info = await store.run(new_id)
            _out(f"run {new_id}: {info.status}" + (f", {info.pending} waiting for a human" if info.pending else ""))
    return 0
