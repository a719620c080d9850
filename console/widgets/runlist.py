"""Every run, newest first, as a virtual list with filters."""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.text import Text

from kernel.owner import owner_alive
from kernel.projection import TERMINAL, RunInfo
from kernel.store import Store

from ..format import duration
from .vlist import VirtualList

__all__ = ["RunList", "STATUS_STYLE"]

STATUS_STYLE = {
    "running": ("▶", "$primary"),
    "waiting": ("⚑", "$warning"),
    "completed": ("✓", "$success"),
    "failed": ("✗", "$error"),
    "cancelled": ("■", "$secondary"),
    "diverged": ("≠", "$error"),
}


class RunList(VirtualList):
    COMPONENT_CLASSES = VirtualList.COMPONENT_CLASSES | {f"runlist--{s}" for s in STATUS_STYLE}
    DEFAULT_CSS = "\n".join(
        f"RunList > .runlist--{status} {{ color: {colour}; }}" for status, (_, colour) in STATUS_STYLE.items()
    )

    def __init__(self, store: Store, *, now: Callable[[], int] = time.time_ns, **kw: Any) -> None:
        super().__init__(**kw)
        self.store = store
        self.now = now
        self.status: str | None = None
        self.graph: str | None = None
        self.search: str | None = None
        self.order = "newest"

    async def fetch_page(self, page: int) -> list[tuple[RunInfo, bool]]:
        runs = await self.store.runs(
            status=self.status, graph=self.graph, search=self.search, limit=self.PAGE,
            offset=page * self.PAGE, order=self.order,
        )
        # whether a live process drives it: decided here, in the worker (it reads /proc)
        return [(r, r.status in ("running", "waiting") and not owner_alive(r.owner, r.lease_until_ns)) for r in runs]

    async def reload(self) -> None:
        count = await self.store.count_runs(status=self.status, graph=self.graph, search=self.search)
        self.set_count(count)
        self.invalidate()

    def selected(self) -> RunInfo | None:
        item = self.item(self.cursor)
        return item[0] if item else None

    def render_row(self, index: int, item: tuple[RunInfo, bool], width: int) -> Text:
        run, orphan = item
        icon, _ = STATUS_STYLE.get(run.status, ("?", ""))
        status_style = self.style_of(f"runlist--{run.status}") if run.status in STATUS_STYLE else None
        dim = self.style_of("vlist--dim")
        end = run.updated_ns if run.status in TERMINAL else self.now()
        age = duration(max(0, self.now() - run.created_ns))
        text = Text(no_wrap=True)
        text.append(f" {icon} {run.status:<9} ", style=status_style)
        text.append(f"{run.run_id:<15} ")
        text.append(f"{run.graph[:12]:<12} ")
        text.append(f"{age:>7} ago " if width >= 90 else f"{age:>7} ", style=dim)
        text.append(f"{duration(max(0, end - run.created_ns)):>7} ")
        text.append(f"{run.last_seq:>6} ev ", style=dim)
        if run.pending:
            text.append(f" ⚑ {run.pending} waiting " if width >= 90 else f" ⚑{run.pending}", style=status_style)
        if orphan:
            text.append(" orphaned" if width >= 90 else " orph", style=dim)
        if width > 100:
            owner = (run.owner or "").rsplit(":", 1)[0]
            lineage = f"fork of {run.parent_run_id}" if run.labels.get("fork_of") else (
                f"child of {run.parent_run_id}" if run.parent_run_id else "")
            text.append(f" {owner:<22} {lineage}", style=dim)
        return text
