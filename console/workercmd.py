"""`vigil worker`: the long-lived owner of runs (under systemd or tmux) until SIGTERM or SIGINT;
its runs are released for the next worker when it stops."""

from __future__ import annotations

import argparse
import asyncio
import sys

from kernel.engine.runtime import Runtime
from kernel.errors import VigilError
from kernel.gctune import tune_gc_for_runs
from kernel.live.publish import publishing
from kernel.store import Store

from .cmdargs import _registry
from .commands import _db_path, _out


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
