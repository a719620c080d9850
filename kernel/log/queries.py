"""SQL both backends share word for word; `mark` is the backend's placeholder (? or %s)."""

from __future__ import annotations

from typing import Iterable

from .folding import InterruptInfo

__all__ = ["ORDERS", "interrupts_query", "interrupt_infos", "contains_pattern"]


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, literally: a run searched for "a_b" or "50%" is not
    a wildcard query (both backends' LIKE take ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


ORDERS = {
    "newest": "r.created_ns DESC, r.run_id",
    "oldest": "r.created_ns ASC, r.run_id",
    # what needs someone first: waiting, then failed or diverged, running, then the settled
    "status": "CASE r.status WHEN 'waiting' THEN 0 WHEN 'failed' THEN 1 WHEN 'diverged' THEN 1"
              " WHEN 'paused' THEN 2 WHEN 'running' THEN 2 WHEN 'cancelled' THEN 3 ELSE 4 END, r.created_ns DESC, r.run_id",
    "graph": "r.graph, r.created_ns DESC, r.run_id",
}


def interrupts_query(table: str, mark: str, run_id: str | None, pending_only: bool) -> tuple[str, list]:
    sql = f"SELECT {', '.join(InterruptInfo.__struct_fields__)} FROM {table}"
    clauses, args = [], []
    if run_id:
        clauses.append(f"run_id = {mark}")
        args.append(run_id)
    if pending_only:
        clauses.append("resolved_seq IS NULL")
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return sql + " ORDER BY raised_ns, run_id, seq", args


def interrupt_infos(rows: Iterable[tuple]) -> list[InterruptInfo]:
    cols = InterruptInfo.__struct_fields__
    return [InterruptInfo(**dict(zip(cols, r))) for r in rows]
