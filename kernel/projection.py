"""The `runs` and `interrupts` projections, advanced in the same transaction as the events."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from .errors import CorruptRow
from .events import (
    InterruptRaised,
    InterruptResolved,
    RunCancelled,
    RunCompleted,
    RunDiverged,
    RunFailed,
    RunPaused,
    RunResumed,
    RunStarted,
)

__all__ = ["RunInfo", "RUN_COLUMNS", "PROJECTED", "TERMINAL", "STATUSES", "new_row", "advance", "run_info",
           "failure_category"]

# Stored in `runs`; RunInfo adds last_seq and updated_ns, read from the run's last event.
RUN_COLUMNS = (
    "run_id",
    "graph",
    "graph_version",
    "status",
    "created_ns",
    "pending",
    "owner",
    "lease_until_ns",
    "parent_run_id",
    "labels",
    "error",
    "error_category",  # a failed run's ErrorInfo.category (schema v4 on SQLite, v2 on PostgreSQL)
)

# The event types that change a run's row; any other append leaves `runs` untouched.
PROJECTED = (
    RunStarted,
    InterruptRaised,
    InterruptResolved,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunDiverged,
    RunPaused,
    RunResumed,
)

TERMINAL = frozenset({"completed", "failed", "cancelled", "diverged"})
STATUSES = ("running", "waiting", "paused", "completed", "failed", "cancelled", "diverged")


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the runs projection."""

    run_id: str
    graph: str
    graph_version: str
    status: str
    created_ns: int
    pending: int
    owner: str | None
    lease_until_ns: int | None
    parent_run_id: str | None
    labels: dict[str, str]
    error: str | None
    last_seq: int
    updated_ns: int
    error_category: str | None = None
    # The database's clock when this row was read: leases are compared with it, never with the
    # reading host's clock (hosts sharing a PostgreSQL log may disagree by seconds).
    seen_ns: int = 0


def run_info(row: tuple, seen_ns: int | None = None) -> RunInfo:
    """From RUN_COLUMNS followed by last_seq and updated_ns; `seen_ns` is the database's clock
    (for SQLite, this host's)."""
    values = dict(zip(RUN_COLUMNS, row))
    try:
        labels = json.loads(values["labels"] or "{}")
    except (ValueError, TypeError, RecursionError) as exc:
        raise CorruptRow(f"run {values['run_id']}: its labels column is not JSON ({exc})") from None
    if not isinstance(labels, dict):
        raise CorruptRow(f"run {values['run_id']}: its labels column is not a JSON object")
    values["labels"] = labels
    return RunInfo(
        **values, last_seq=row[-2] or 0, updated_ns=row[-1] or values["created_ns"],
        seen_ns=seen_ns if seen_ns is not None else time.time_ns(),
    )


def failure_category(event: RunFailed) -> str:
    """A body written before ErrorInfo existed says nothing: the catch-all, so every failed run
    has a category to filter on."""
    return event.error_info.category if event.error_info is not None else "internal"


def new_row(run_id: str, ts_ns: int) -> dict[str, Any]:
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(
        run_id=run_id,
        graph="",
        graph_version="",
        status="running",
        created_ns=ts_ns,
        pending=0,
        labels="{}",
    )
    return row


def advance(
    row: dict[str, Any], event: Any, seq: int, ts_ns: int, interrupt_ops: list[tuple]
) -> None:
    """Fold one event into a run's row; interrupt table changes go to `interrupt_ops`."""
    if isinstance(event, RunStarted):
        row["graph"] = event.graph
        row["graph_version"] = event.graph_version
        row["parent_run_id"] = event.parent_run_id
        row["labels"] = json.dumps(event.labels, sort_keys=True)
        row["created_ns"] = ts_ns
    elif isinstance(event, InterruptRaised):
        row["pending"] += 1
        interrupt_ops.append(
            ("raise", row["run_id"], event.interrupt_id, seq, event.kind, event.title, ts_ns)
        )
    elif isinstance(event, InterruptResolved):
        row["pending"] = max(0, row["pending"] - 1)
        interrupt_ops.append(("resolve", row["run_id"], event.interrupt_id, seq))
    elif isinstance(event, RunCompleted):
        row["status"] = "completed"
    elif isinstance(event, RunFailed):
        row["status"] = "failed"
        row["error"] = event.error
        row["error_category"] = failure_category(event)
    elif isinstance(event, RunCancelled):
        row["status"] = "cancelled"
        row["error"] = event.reason or None
    elif isinstance(event, RunDiverged):
        row["status"] = "diverged"
        row["error"] = event.error
    elif isinstance(event, RunPaused):
        row["status"] = "paused"
    elif isinstance(event, RunResumed):
        row["status"] = "running"
    if row["status"] == "paused":
        pass  # stays paused, pending or not, until RunResumed
    elif row["status"] not in TERMINAL:
        row["status"] = "waiting" if row["pending"] else "running"
    else:  # an ended run has no owner: nothing to drive, nothing to release later
        row["owner"] = row["lease_until_ns"] = None
        if row["pending"]:  # nor anything to answer: its end closes what it waited on
            row["pending"] = 0
            interrupt_ops.append(("close", row["run_id"], None, seq))
