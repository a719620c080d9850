"""`vigil copy`: move a whole log to another backend (SQLite -> PostgreSQL, or back), verified.

Every run's rows go over exactly as stored (bodies, crcs, times, step ids), page by page, never
a run in memory; the target rebuilds its runs and interrupts projections from them as it appends,
and takes its own snapshots. Nobody owns a copied run: a worker on the target adopts the live
ones. Then every run is read back from both logs and compared row by row, and the projections
field by field; any difference is named.

Before anything is written, the target is checked to hold none of the source's runs. A row keeps
its run, seq, time, type, step id, body and crc; its `pos` is the target's (a log's own commit
order: runs are copied one after another, so their interleaving differs).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import msgspec

from .artifactio import compare_artifacts, copy_artifacts
from .codec import decode
from .errors import ImportConflict, NotFound, VigilError

__all__ = ["CopyReport", "copy_log", "verify_copy"]

_PAGE = 2000
# Compared between source and target; owner and lease are not copied (nobody drives a copy yet).
_SAME = ("graph", "graph_version", "status", "created_ns", "pending", "parent_run_id", "labels", "error", "last_seq", "updated_ns")


class CopyReport(msgspec.Struct, kw_only=True):
    runs: int = 0
    events: int = 0
    seconds: float = 0.0
    artifacts: int = 0


async def _run_ids(store: Any):
    """Every run id, oldest first, page by page (a parent before its forks and children)."""
    offset = 0
    while batch := await store.runs(limit=500, offset=offset, order="oldest"):
        offset += len(batch)
        for info in batch:
            yield info.run_id


async def copy_log(source: Any, target: Any, *, progress: Callable[[CopyReport], None] | None = None) -> CopyReport:
    report = CopyReport()
    started = time.monotonic()
    async for run_id in _run_ids(source):
        try:
            await target.run(run_id)
        except NotFound:
            continue
        raise ImportConflict(f"run {run_id} is already in {target.where}; nothing was copied")
    report.artifacts = await copy_artifacts(source, target)  # before the events that reference them
    last_told = started
    async for run_id in _run_ids(source):
        seq = 0
        while rows := await source.raw_rows(run_id, seq + 1, _PAGE):
            full = [(run_id, *r) for r in rows]
            events = [decode(r[2], r[4], r[5]) for r in rows]
            try:
                seq = await target.append_rows(run_id, full, events, expected_seq=seq)
            except VigilError as exc:
                where = f"after seq {seq}" if seq else "before its first event"
                raise VigilError(f"copying run {run_id} stopped {where}: {exc}") from None
            report.events += len(rows)
            if progress is not None and time.monotonic() - last_told > 1.0:
                last_told = time.monotonic()
                report.seconds = last_told - started
                progress(report)
            if len(rows) < _PAGE:
                break
        report.runs += 1
    report.seconds = time.monotonic() - started
    return report


async def verify_copy(source: Any, target: Any) -> list[str]:
    """What differs between the two logs, run by run (empty: identical)."""
    problems: list[str] = await compare_artifacts(source, target)
    async for run_id in _run_ids(source):
        try:
            a, b = await source.run(run_id), await target.run(run_id)
        except NotFound:
            problems.append(f"run {run_id}: missing from {target.where}")
            continue
        for field in _SAME:
            if getattr(a, field) != getattr(b, field):
                problems.append(f"run {run_id}: {field} is {getattr(a, field)!r} there, {getattr(b, field)!r} here")
        ia = [(i.interrupt_id, i.seq, i.kind, i.title, i.resolved_seq) for i in await source.interrupts(run_id, pending_only=False)]
        ib = [(i.interrupt_id, i.seq, i.kind, i.title, i.resolved_seq) for i in await target.interrupts(run_id, pending_only=False)]
        if ia != ib:
            problems.append(f"run {run_id}: its interrupts differ")
        lo = 1
        while True:
            ra = await source.raw_rows(run_id, lo, _PAGE)
            rb = await target.raw_rows(run_id, lo, _PAGE)
            if ra != rb:
                differ = [x[0] for x, y in zip(ra, rb) if x != y]
                longer = ra if len(ra) > len(rb) else rb
                seq = differ[0] if differ else longer[min(len(ra), len(rb))][0]
                problems.append(f"run {run_id}: seq {seq} differs")
                break
            if len(ra) < _PAGE:
                break
            lo = ra[-1][0] + 1
    return problems
