"""The CLI's commands that run or steer runs: graphs, run, demo, approve, reject, cancel, fork,
resume. A run owned by a live process is steered through a signal its owner applies; a run
nobody drives is changed here directly."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import msgspec

from kernel.engine.runtime import Runtime, choice_problem
from kernel.engine.steer import steer
from kernel.errors import NotFound, VigilError
from kernel.events import InterruptRaised, InterruptResolved
from kernel.gctune import tune_gc_for_runs
from kernel.live.publish import publishing
from kernel.owner import current_actor
from kernel.projection import TERMINAL
from kernel.registry import Registry
from kernel.store import Store

from .commands import _db_path, _open, _out
from .format import event_line
from .workflows import default_registry

_json = msgspec.json.Encoder()


def _registry(args: argparse.Namespace) -> Registry:
    return default_registry(args.workflows)


def _parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise VigilError(f"{what} is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:
        raise VigilError(f"{what} is not valid JSON: {exc}") from None


async def cmd_graphs(args: argparse.Namespace) -> int:
    for graph in _registry(args):
        # A tool with a policy (an MCP server's) is decided per call: listed here if a call
        # with no argument rule in play asks; its words below say the rest.
        approval = [
            t.name for t in graph.tools
            if (t.verdict({}).decision == "ask" if hasattr(t, "policy") else t.requires_approval)
        ]
        policies = {t.name: t.policy for t in graph.tools if hasattr(t, "policy")}
        limits = {t.name: t.limit.max_concurrency for t in graph.tools if t.limit is not None}
        if args.json:
            _out(_json.encode({
                "name": graph.name, "version": graph.version, "description": graph.description,
                "nodes": list(graph.nodes), "tools": [t.name for t in graph.tools],
                "requires_approval": approval, "policy": policies,
                "max_concurrency": graph.max_concurrency, "limits": limits,
            }))
        else:
            needs = f"  approval: {', '.join(approval)}" if approval else ""
            _out(f"{graph.name:<12} v{graph.version:<4} {graph.description}{needs}")
            for name, words in policies.items():
                _out(f"  {name}: {words}")
            caps = [f"{graph.max_concurrency} nodes"] * bool(graph.max_concurrency)
            caps += [f"{k} {n}" for k, n in limits.items()]
            if caps:  # what a worker's operator sizes against
                _out(f"  at once: {', '.join(caps)}")
    return 0


# driving runs in this process ------------------------------------------------------------


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


def _how_to_answer(run_id: str, raised: InterruptRaised) -> str:
    """Everything a shell approver needs to answer exactly this interrupt, never blind."""
    where = f"vigil {{}} {run_id} --interrupt {raised.interrupt_id} --hash {raised.payload_hash[:12]}"
    if raised.kind == "approval":
        hint = f"{where.format('approve')}   (or reject --reason ..., approve --edit JSON)"
    elif raised.kind == "input":
        hint = f"{where.format('approve')} --answer VALUE   (or reject)"
    else:
        hint = f"{where.format('approve')} [--answer OUTPUT]   (retry; or reject to fail the run)"
    lines = [
        f"waiting for a human: {raised.title}",
        f"interrupt {raised.interrupt_id}  payload hash {raised.payload_hash}",
        *_what_it_asks(raised).splitlines(),
        hint,
    ]
    return "\n".join(f"    {line}" for line in lines)


def _what_it_asks(raised: InterruptRaised) -> str:
    payload = raised.payload
    if raised.kind == "approval" and isinstance(payload, dict):
        return f"tool {payload.get('tool')} with {_dumps(payload.get('args'))}"
    if raised.kind == "input" and isinstance(payload, dict) and isinstance(payload.get("choices"), list):
        return f"choices: {', '.join(map(str, payload['choices']))}\n{_dumps(payload)}"
    return _dumps(payload)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


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


# steering a run, whoever drives it -------------------------------------------------------


async def _pending(store: Store, run_id: str, args: argparse.Namespace, verb: str) -> InterruptRaised:
    """The interrupt the operator means: named by --interrupt (and --hash), or the one a
    terminal shows and has confirmed. Never simply whatever is pending now."""
    info = await store.run(run_id)
    if info.status in TERMINAL:
        # a named interrupt someone else resolved first: say that, not only that the run moved
        # on (the run may well have finished in between, and the operator must learn their
        # decision was not the one taken)
        every = await store.interrupts(run_id, pending_only=False) if args.interrupt else []
        named = [i for i in every if i.interrupt_id == args.interrupt and i.resolved_seq is not None]
        if named and isinstance((await _raised(store, run_id, named[0].resolved_seq)), InterruptResolved):
            raise VigilError(f"interrupt {args.interrupt} of run {run_id} is already resolved "
                             f"(the run has ended: {info.status})")
        raise VigilError(f"run {run_id} has ended ({info.status}); it waits on nothing")
    prefix = args.hash
    if prefix is not None and len(prefix) < 4:
        raise VigilError("--hash needs at least 4 characters of the payload hash")
    pending = [await _raised(store, run_id, i.seq) for i in await store.interrupts(run_id)]
    if args.interrupt is not None:
        chosen = [r for r in pending if r.interrupt_id == args.interrupt]
        if not chosen:
            every = await store.interrupts(run_id, pending_only=False)
            if any(i.interrupt_id == args.interrupt for i in every):
                raise VigilError(f"interrupt {args.interrupt} of run {run_id} is already resolved")
            raise NotFound(f"run {run_id} has no interrupt {args.interrupt!r}")
        raised = chosen[0]
        if prefix is not None and not raised.payload_hash.startswith(prefix):
            raise VigilError(
                f"interrupt {raised.interrupt_id}: hash changed (you saw {prefix}, it is now "
                f"{raised.payload_hash[:12]}: {_cut(_what_it_asks(raised), 80)}); look again"
            )
        return raised
    if not pending:
        raise VigilError(f"run {run_id} has no pending interrupt")
    if prefix is not None:
        chosen = [r for r in pending if r.payload_hash.startswith(prefix)]
        if len(chosen) == 1:
            return chosen[0]
    elif len(pending) == 1 and sys.stdin.isatty() and sys.stdout.isatty():
        raised = pending[0]
        _out(_how_to_answer(run_id, raised).rsplit("\n", 1)[0])
        if input(f"{verb} this? [y/N] ").strip().lower() not in ("y", "yes"):
            raise VigilError(f"not {verb}d; nothing was sent")
        return raised
    waits = "; ".join(
        f"{r.interrupt_id} (hash {r.payload_hash[:12]}: {_cut(_what_it_asks(r), 60)})" for r in pending
    )
    hashed = f" none with hash {prefix};" if prefix is not None else ""
    raise VigilError(
        f"run {run_id} waits on {waits};{hashed} pass --interrupt ID --hash HASH for the one you saw"
    )


async def _raised(store: Store, run_id: str, seq: int) -> InterruptRaised:
    records = await store.events(run_id, seq, seq)
    return records[0].event


async def _steer(args: argparse.Namespace, kind: str, body: dict[str, Any], run_id: str) -> str:
    async with await Store.open(_db_path(args)) as store:
        async with Runtime(store, _registry(args)) as runtime:
            how = await steer(runtime, run_id, kind, body, wait=args.wait, drive=False)
    if how == "applied here" and kind == "resolve":
        return f"applied here (no live owner); `vigil resume {run_id}` continues the run"
    return "applied here (no live owner)" if how == "applied here" else how


async def _decide(args: argparse.Namespace, approve: bool) -> int:
    async with await _open(args) as store:
        run_id = await store.resolve(args.run)
        raised = await _pending(store, run_id, args, "approve" if approve else "reject")
    value: Any = None
    if raised.kind == "approval":
        if approve and args.edit is not None:
            decision, value = "edit", _parse_json(args.edit, "--edit")
        else:
            decision = "approve" if approve else "reject"
            value = None if approve else (args.reason or "")
    elif raised.kind == "input":
        if approve:
            if args.answer is None:
                raise VigilError(f"interrupt {raised.interrupt_id} asks: {raised.title}; pass --answer VALUE")
            decision, value = "answer", _answer(args.answer)
            if problem := choice_problem(raised, value):
                raise VigilError(f"interrupt {raised.interrupt_id}: {problem}")
        else:
            decision, value = "reject", args.reason or ""
    else:  # in doubt
        if approve:
            decision, value = ("answer", _answer(args.answer)) if args.answer is not None else ("retry", None)
        else:
            decision = "fail"
    body = {
        "interrupt_id": raised.interrupt_id, "decision": decision, "value": value,
        "payload_hash": raised.payload_hash, "always": bool(getattr(args, "always", False)),
    }
    how = await _steer(args, "resolve", body, run_id)
    _out(f"{decision} {raised.interrupt_id} on run {run_id}: {how}")
    return 0


def _answer(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise VigilError("--answer is nested too deeply") from None
    except ValueError:
        return text  # a bare word is an answer too


async def cmd_approve(args: argparse.Namespace) -> int:
    return await _decide(args, True)


async def cmd_reject(args: argparse.Namespace) -> int:
    return await _decide(args, False)


async def _run_command(args: argparse.Namespace, kind: str, done: str) -> int:
    """cancel, pause, unpause: the same path whoever drives the run."""
    async with await _open(args) as store:
        run_id = await store.resolve(args.run)
    body = {"reason": args.reason or ""} if hasattr(args, "reason") else {}
    how = await _steer(args, kind, body, run_id)
    if kind == "unpause" and how.startswith("applied here"):
        how = f"applied here; a `vigil worker` or `vigil resume {run_id}` drives it on"
    _out(f"{done} run {run_id}: {how}")
    return 0


async def cmd_cancel(args: argparse.Namespace) -> int:
    return await _run_command(args, "cancel", "cancelled")


async def cmd_pause(args: argparse.Namespace) -> int:
    return await _run_command(args, "pause", "paused")


async def cmd_unpause(args: argparse.Namespace) -> int:
    return await _run_command(args, "unpause", "unpaused")


async def cmd_worker(args: argparse.Namespace) -> int:
    import signal

    from kernel.engine.worker import Worker

    registry = _registry(args)
    graphs = None
    if args.graphs:
        graphs = {g.strip() for g in args.graphs.split(",") if g.strip()}
        for name in graphs:
            registry.get(name)  # an unknown graph is an error now, not a worker that idles
    if args.concurrency < 1:
        raise VigilError("--concurrency must be at least 1")
    if not 0.5 <= args.lease <= 3600:
        raise VigilError("--lease must be between 0.5 and 3600 seconds")
    def say(line: str) -> None:  # a line at a time: under systemd stdout is a pipe
        _out(line)
        sys.stdout.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with await Store.open(_db_path(args)) as store:
        async with Runtime(store, registry, lease_seconds=args.lease) as runtime, publishing(runtime, store):
            # Start-up is done: what exists now lives as long as the process (kernel/gctune.py:
            # full collections over thousands of live runs were most of a busy worker's CPU).
            tune_gc_for_runs()
            worker = Worker(runtime, concurrency=args.concurrency, graphs=graphs, grace=args.grace, say=say)
            names = ", ".join(sorted(graphs or (g.name for g in registry)))
            say(f"worker {runtime.owner} on {store.where}: graphs {names}; up to {args.concurrency} at once")
            await worker.run(stop)
    _out("worker stopped; its runs are released for the next worker")
    return 0
