"""Every run, newest first, as a virtual list with filters."""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.text import Text

from kernel.projection import TERMINAL, RunInfo
from kernel.store import Store

from ..format import duration, owner_text
from .vlist import VirtualList

__all__ = ["RunList", "STATUS_STYLE"]

STATUS_STYLE = {
    "running": ("▶", "$primary"),
    "waiting": ("⚑", "$warning"),
    "paused": ("‖", "$warning"),
    "completed": ("✓", "$success"),
    "failed": ("✗", "$error"),
    "cancelled": ("■", "$secondary"),
    "diverged": ("≠", "$error"),
}


class RunList(VirtualList):
    COMPONENT_CLASSES = VirtualList.COMPONENT_CLASSES | {f"runlist--{s}" for s in STATUS_STYLE} | {"runlist--mark"}
    DEFAULT_CSS = "\n".join(
        f"RunList > .runlist--{status} {{ color: {colour}; }}" for status, (_, colour) in STATUS_STYLE.items()
    ) + "\nRunList > .runlist--mark { color: $accent; text-style: bold; }"

    SEARCH_PAGES = 5  # pages looked through for the selected run when it moved off its page

    def __init__(self, store: Store, *, now: Callable[[], int] = time.time_ns, **kw: Any) -> None:
        super().__init__(**kw)
        self.store = store
        self.now = now
        self.status: str | None = None
        self.graph: str | None = None
        self.search: str | None = None
        self.order = "newest"
        self.marked: set[str] = set()

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh)  # ages and running durations tick

    async def fetch_page(self, page: int) -> list[tuple[RunInfo, str]]:
        runs = await self.store.runs(
            status=self.status, graph=self.graph, search=self.search, limit=self.PAGE,
            offset=page * self.PAGE, order=self.order,
        )
        # who drives it: decided here, in the worker (it reads /proc), never in render_line
        return [(r, owner_text(r)) for r in runs]

    async def reload(self, *, reset: bool = False) -> None:
        """Count and re-read the runs; the cursor stays on the run it was on, wherever that row
        went (new runs above it, another sort). A run that left the list (a new filter) leaves
        the cursor on the first row with `reset`, on the same row otherwise."""
        cursor = self.cursor
        kept = self.selected()
        count = await self.store.count_runs(status=self.status, graph=self.graph, search=self.search)
        home = cursor // self.PAGE
        fresh = {home: await self.fetch_page(home)}
        found = self._find(kept.run_id, home, fresh[home]) if kept else None
        if found is None and kept is not None:
            for page in range(min(-(-count // self.PAGE), self.SEARCH_PAGES)):
                if page != home:
                    fresh[page] = await self.fetch_page(page)
                    if (found := self._find(kept.run_id, page, fresh[page])) is not None:
                        break
        self.set_count(count)
        self.invalidate()
        for page, rows in fresh.items():
            self._pages[page] = rows
            self._stale.discard(page)
        if self.cursor == cursor:  # unless the user moved meanwhile
            if found is not None:
                self.cursor = found
            elif reset:
                self.cursor = 0
        self.refresh()

    def _find(self, run_id: str, page: int, rows: list[tuple[RunInfo, str]]) -> int | None:
        for i, (run, _) in enumerate(rows):
            if run.run_id == run_id:
                return page * self.PAGE + i
        return None

    def selected(self) -> RunInfo | None:
        item = self.item(self.cursor)
        return item[0] if item else None

    @staticmethod
    def _widths(width: int) -> tuple[int, int, int]:
        """(status, graph, owner) column widths for a list `width` cells wide."""
        # A failed run's status says what kind of failure: "failed (rate_limit)" where there is
        # room, else the category alone after the ✗ ("rate_limit" is the longest).
        status, graph = (10, 10) if width < 100 else (19, 14)
        return status, graph, max(8, min(24, width - 46 - status - graph))

    @staticmethod
    def status_text(run: RunInfo, width: int) -> str:
        if run.status != "failed" or not run.error_category:
            return run.status
        return run.error_category if width < 100 else f"failed ({run.error_category})"

    def header(self, width: int) -> Text:
        """The column titles, aligned with `render_row`."""
        status, graph, owner = self._widths(width)
        text = Text(no_wrap=True)
        text.append(f"  {'STATUS':<{status + 2}} {'RUN':<16} {'GRAPH':<{graph}} {'AGE':>6} {'DUR':>6} {'EV':>5} {'⚑':<2} {'OWNER':<{owner}}")
        if width > 100:
            text.append(" LINEAGE")
        return text

    def render_row(self, index: int, item: tuple[RunInfo, str], width: int) -> Text:
        run, owner = item
        icon, _ = STATUS_STYLE.get(run.status, ("?", ""))
        status_style = self.style_of(f"runlist--{run.status}") if run.status in STATUS_STYLE else None
        dim = self.style_of("vlist--dim")
        status_w, graph_w, owner_w = self._widths(width)
        now = self.now()
        end = run.updated_ns if run.status in TERMINAL else now
        text = Text(no_wrap=True)
        text.append("●" if run.run_id in self.marked else " ", style=self.style_of("runlist--mark"))
        text.append(f" {icon} {self.status_text(run, width)[:status_w]:<{status_w}} ", style=status_style)
        text.append(f"{run.run_id[:16]:<16} ")
        text.append(f"{run.graph[:graph_w]:<{graph_w}} ")
        text.append(f"{duration(max(0, now - run.created_ns)):>6} ", style=dim)
        text.append(f"{duration(max(0, end - run.created_ns)):>6} ")
        text.append(f"{run.last_seq:>5} ", style=dim)
        text.append(f"{'⚑' + str(run.pending) if run.pending else '':>2} ", style=status_style)
        text.append(f"{owner[:owner_w]:<{owner_w}}", style=dim if owner in ("-", "free") else None)
        if width > 100:
            lineage = f"fork of {run.parent_run_id}" if run.labels.get("fork_of") else (
                f"child of {run.parent_run_id}" if run.parent_run_id else "")
            text.append(f" {lineage}", style=dim)
        return text
