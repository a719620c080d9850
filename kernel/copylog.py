"""`vigil copy`: move a whole log to another backend (SQLite -> PostgreSQL, or back), verified.

Every run's rows go over exactly as stored (bodies, crcs, times, step ids), page by page, never
a run in memory; the target rebuilds its runs and interrupts projections from them as it appends,
and takes its own snapshots. Nobody owns a copied run: a worker on the target adopts the live
ones. Then every run is read back from both logs and compared row by row, and the projections
field by field; any difference is named.

Before anything is written, the target is checked to hold none of the source's runs. A row keeps
its run, seq, time, type, step id, body and crc; its `pos` is the target's (a log's own commit
order: runs are copied one after another, so their interleaving differs).

The hash chain (kernel/chain.py) goes over as stored, and seals as they are: a copied run
verifies with the same chain values (and `vigil verify --key` with the same seals), and a chain
already broken in the source stays broken at the same seq rather than being laundered into a
fresh one. The copy recomputes each run's chain on the way and names, in `broken`, every run
whose chain breaks in the source.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import msgspec

from .chain import ChainCheck
from .artifactio import compare_artifacts, copy_artifacts
from .codec import decode
from .errors import ImportConflict, NotFound, VigilError

__all__ = ["CopyReport", "copy_log", "verify_copy"]

_PAGE = 2000
# Compared between source and target; owner and lease are not copied (nobody drives a copy yet).
_SAME = ("graph", "graph_version", "status", "created_ns", "pending", "parent_run_id", "labels", "error", "last_seq", "updated_ns",
         "error_category")


class CopyReport(msgspec.Struct, kw_only=True):
    runs: int = 0
    events: int = 0
    seconds: float = 0.0
    broken: list[str] = msgspec.field(default_factory=list)  # "run R: its hash chain breaks at seq N ..."
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
        check = ChainCheck(run_id)
        while rows := await source.raw_rows(run_id, seq + 1, _PAGE):
            # Read apart from `rows`: a source still being appended to may have grown between.
            chained = [c for c in await source.chain_rows(run_id, seq + 1, _PAGE) if c[0] <= rows[-1][0]]
            check.feed(chained)
            chains = {c[0]: c[4] for c in chained}
            full = [(run_id, *r, chains.get(r[0])) for r in rows]
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
        for seal in await source.seals(run_id):
            await target.add_seal(run_id, *seal)
        if check.first_break is not None:
            report.broken.append(
                f"run {run_id}: its hash chain breaks at seq {check.first_break[0]} in the source; "
                "copied as it is (`vigil verify` names it on both logs)"
            )
        report.runs += 1
    report.seconds = time.monotonic() - started
    return report


async def _chain_differs(source: Any, target: Any, run_id: str) -> str | None:
    lo = 1
    while True:
        ra = await source.chain_rows(run_id, lo, _PAGE)
        rb = await target.chain_rows(run_id, lo, _PAGE)
        for x, y in zip(ra, rb):
            if x[4] != y[4]:
                return f"run {run_id}: seq {x[0]}: the hash chain differs"
        if len(ra) < _PAGE or len(rb) < _PAGE:
            return None  # a length difference is the rows check's to name
        lo = ra[-1][0] + 1


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
        if await source.seals(run_id) != await target.seals(run_id):
            problems.append(f"run {run_id}: its seals differ")
        problem = await _chain_differs(source, target, run_id)
        if problem is not None:
            problems.append(problem)
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
