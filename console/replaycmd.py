"""`vigil replay RUN|--all`: re-execute the current graph code against recorded runs, in memory,
and say for each run whether it still follows its recording (before deploying a new version
of a graph with runs in flight). Reads the log only; runs no effect.

Exit codes: 0 every run replayed as recorded, 1 a run diverged (or holds an unreadable event),
2 bad input (or a run's graph is not registered here: nothing was checked for it).
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from kernel.errors import VigilError

__all__ = ["add_parser", "cmd_replay"]

_json = msgspec.json.Encoder()
_PROGRESS_EVERY = 100  # runs; below that, --all says nothing on stderr but its summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-run the current graph code against recorded runs (in memory; no effects, no writes)")
    p.add_argument("run", nargs="?", help="run id or a unique prefix of one")
    p.add_argument("--all", action="store_true", help="every run in the log, one at a time, oldest first")
    p.add_argument("--json", action="store_true", help="one JSON object per run")


def _line(v) -> str:
    if v.status == "ok":
        return f"{v.run_id}  OK" + (f" (in flight: replayed up to seq {v.last_seq})" if v.in_flight else "")
    if v.status == "skipped":
        return f"{v.run_id}  SKIPPED: {v.reason}"
    return f"{v.run_id}  {v.status.upper()} at seq {v.seq}: {v.reason}"


async def cmd_replay(args: argparse.Namespace) -> int:
    from kernel.engine.replaycheck import replay_all

    from .commands import _open
    from .workflows import default_registry

    if bool(args.run) == bool(args.all):
        raise VigilError("name one RUN, or --all")
    registry = default_registry(args.workflows)
    counts = {"ok": 0, "diverged": 0, "unreadable": 0, "skipped": 0}
    async with await _open(args) as store:
        if args.all:
            ids, total = None, await store.count_runs()
        else:
            run_id = await store.resolve(args.run)
            graph = (await store.run(run_id)).graph
            if graph not in registry:  # one run we cannot check is bad input
                raise VigilError(f"run {run_id} is a {graph!r} run, a graph not registered here (--workflows MODULE)")
            ids, total = [run_id], 1
        done = 0
        async for verdict in replay_all(store, registry, ids):
            counts[verdict.status] += 1
            done += 1
            if args.json:
                sys.stdout.buffer.write(_json.encode({
                    "run_id": verdict.run_id, "graph": verdict.graph, "status": verdict.status,
                    "seq": verdict.seq, "reason": verdict.reason, "last_seq": verdict.last_seq,
                    "in_flight": verdict.in_flight,
                }) + b"\n")
            else:
                sys.stdout.write(_line(verdict) + "\n")
            sys.stdout.flush()
            if total >= _PROGRESS_EVERY and done % _PROGRESS_EVERY == 0:
                print(f"replay: {done}/{total} runs", file=sys.stderr, flush=True)
    if args.all:
        print(f"replayed {done} runs: {counts['ok']} ok, {counts['diverged']} diverged"
              + (f", {counts['unreadable']} unreadable" if counts["unreadable"] else "")
              + (f", {counts['skipped']} skipped (graph not registered)" if counts["skipped"] else ""),
              file=sys.stderr)
    if counts["diverged"] or counts["unreadable"]:
        return 1
    return 2 if counts["skipped"] else 0
