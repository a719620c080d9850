"""Which trace a run's spans belong to, read from the log.

A child run (`lineage="child"`) is part of the work of the step that started it: it joins its
parent's trace, its run span a child of the parent's `child` action span (the parent_seq the
child records is that action's seq, so the id is known without reading the parent). A fork is a
new piece of work over an old state: its own trace, with a link to the source run's span.
"""

from __future__ import annotations

from typing import Any

from ..events import RunStarted
from .mapping import RunContext
from .spans import SpanLink, span_id, trace_id

__all__ = ["context_of", "started_of"]

_MAX_DEPTH = 64  # children of children: a log with a cycle in its lineage must not hang us


async def started_of(store: Any, run_id: str) -> RunStarted | None:
    first = await store.events(run_id, 1, 1, limit=1)
    event = first[0].event if first else None
    return event if isinstance(event, RunStarted) else None


async def context_of(store: Any, run_id: str, started: RunStarted | None,
                     cache: dict[str, RunContext] | None = None) -> RunContext:
    cache = {} if cache is None else cache
    if run_id in cache:
        return cache[run_id]
    root, node, depth = run_id, started, 0
    while node is not None and node.lineage == "child" and node.parent_run_id and depth < _MAX_DEPTH:
        root = node.parent_run_id
        if root in cache:  # the parent's trace is known: it is ours
            root_trace = cache[root].trace_id
            break
        node = await started_of(store, root)
        depth += 1
    else:
        root_trace = trace_id(root)
    context = RunContext(trace_id=root_trace)
    if started is not None and started.parent_run_id and started.parent_seq:
        parent_span = span_id(started.parent_run_id, started.parent_seq)
        if started.lineage == "child":
            context = RunContext(trace_id=root_trace, parent_id=parent_span)
        else:
            source = await context_of(store, started.parent_run_id, await started_of(store, started.parent_run_id), cache)
            link = SpanLink(trace_id=source.trace_id, span_id=span_id(started.parent_run_id, 1),
                            attributes={"vigil.link": "forked_from", "vigil.fork.seq": started.parent_seq})
            context = RunContext(trace_id=root_trace, link=link)
    cache[run_id] = context
    return context
