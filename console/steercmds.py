"""The CLI's commands that steer a run, whoever drives it: approve, reject, cancel, pause,
unpause. A run owned by a live process is steered through a signal its owner applies; a run
nobody drives is changed here directly."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kernel.engine.runtime import Runtime, choice_problem
from kernel.engine.steer import steer
from kernel.errors import NotFound, VigilError
from kernel.events import InterruptRaised, InterruptResolved
from kernel.projection import TERMINAL
from kernel.store import Store

from .cmdargs import _parse_json, _registry
from .commands import _db_path, _open, _out
from .interrupttext import _cut, _how_to_answer, _what_it_asks


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
