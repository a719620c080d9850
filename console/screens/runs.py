"""The first screen: every run, live, with filters; the door to panes, the scrubber and prompts."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label

from kernel.errors import StoreError

from ..widgets.footer import Footer
from ..widgets.runlist import RunList

__all__ = ["RunsScreen"]

STATUSES = [None, "running", "waiting", "paused", "completed", "failed", "cancelled", "diverged"]


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "open", "open", id="runs.open"),
        Binding("s", "scrub", "scrubber", id="runs.scrub"),
        Binding("space", "mark", "mark for grid", show=False, id="runs.mark"),
        Binding("g", "grid", "grid of marked", show=False, id="runs.grid"),
        Binding("n", "new_run", "new run", id="runs.new"),
        Binding("f", "cycle_status", "status filter", show=False, id="runs.filter"),
        Binding("slash", "search", "search", id="runs.search"),
        Binding("o", "cycle_order", "sort", show=False, id="runs.sort"),
        Binding("escape", "clear", "clear filters", show=False, id="runs.clear"),
        Binding("q", "app.quit", "quit", id="runs.quit"),
    ]
    DEFAULT_CSS = """
    RunsScreen #bar { height: 1; width: 1fr; background: $panel; color: $foreground; padding: 0 1; }
    RunsScreen #search { display: none; }
    RunsScreen #search.shown { display: block; }
    RunsScreen #columns { height: 1; width: 1fr; background: $surface; color: $foreground 70%; text-style: bold; }
    RunsScreen RunList { height: 1fr; }
    RunsScreen #legend { height: 1; width: 1fr; background: $surface; color: $foreground 50%; padding: 0 1; }
    """

    LEGEND = "OWNER: host:pid drives it · free: a worker may take it · orphaned: owner died"

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[str] = []
        self._grid_of_marks = False
        self._stale = False  # events came while another screen was on top: reload on the way back

    def compose(self) -> ComposeResult:
        yield Label("", id="bar")
        yield Input(placeholder="search run id, graph or label; enter to apply, escape to clear", id="search")
        yield Label("", id="columns")
        yield RunList(self.app.store, now=self.app.now, id="runs")
        yield Label(self.LEGEND, id="legend")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunList).focus()
        self.refresh_runs()

    @work(exclusive=True, group="runs-reload")
    async def refresh_runs(self, reset: bool = False) -> None:
        if not self.query(RunList):
            return  # not composed yet, or being taken down (the app is closing)
        runs = self.query_one(RunList)
        try:
            await runs.reload(reset=reset)
        except StoreError:
            return  # the log is unreadable a moment (the feed says "reconnecting"): keep the rows
        self.update_bar()

    def on_resize(self, event) -> None:
        if self.query(RunList) and self.query("#columns"):
            self.query_one("#columns", Label).update(self.query_one(RunList).header(event.size.width))

    def on_screen_resume(self) -> None:
        if self._grid_of_marks:  # back from the grid the marks opened: they are spent
            self._grid_of_marks = False
            self.marked.clear()
            self.query_one(RunList).marked.clear()
            self.query_one(RunList).refresh()
            self.update_bar()
        if self._stale:
            self._stale = False
            self.refresh_runs()

    def update_bar(self) -> None:
        if not self.query(RunList) or not self.query("#bar"):
            return  # not composed yet, or being taken down (a worker can outlive the screen)
        runs = self.query_one(RunList)
        parts = [f"{runs.count} run" if runs.count == 1 else f"{runs.count} runs"]
        if runs.status:
            parts.append(f"status={runs.status}")
        if runs.search:
            parts.append(f"search={runs.search!r}")
        if runs.order != "newest":
            parts.append(f"sorted by {runs.order}")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        waiting = len(self.app.pending)
        parts.append(f"⚑ {waiting} waiting for you (i)" if waiting else "nothing waiting")
        if self.app.pending_elsewhere:  # runs only another process can drive: not ours to answer
            parts.append(f"{len(self.app.pending_elsewhere)} waiting elsewhere")
        if self.app.readonly:
            parts.append("READ-ONLY")
        if self.app.feed_trouble:  # first: the rest of the bar may be out of date meanwhile
            parts.insert(0, f"⟳ reconnecting to the log ({self.app.feed_trouble})")
        if runs.count == 0 and not (runs.status or runs.search):
            parts.append("no runs yet: run `vigil demo`" if self.app.readonly else "no runs yet: press n, or run `vigil demo`")
        self.query_one("#bar", Label).update("  ·  ".join(parts))

    def log_changed(self, batch) -> None:
        """Called by the app, at most 20 times a second, when new events arrive."""
        if self._covered():
            self._stale = True  # under the grid or the scrubber: nobody sees the list, read it later
            return
        if self.query(RunList):
            self.refresh_runs()

    def _covered(self) -> bool:
        """A full screen is above this one (a modal, the prompt or the help, leaves it in view)."""
        stack = self.app.screen_stack
        return self in stack and any(not isinstance(s, ModalScreen) for s in stack[stack.index(self) + 1:])

    def _selected(self) -> str | None:
        run = self.query_one(RunList).selected()
        return run.run_id if run else None

    def action_open(self) -> None:
        if run_id := self._selected():
            self.app.open_panes([run_id])

    def action_scrub(self) -> None:
        if run_id := self._selected():
            self.app.open_scrubber(run_id)

    def action_mark(self) -> None:
        run_id = self._selected()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        elif len(self.marked) < 4:
            self.marked.append(run_id)
        else:
            self.app.notify("a grid holds four runs", severity="warning")
        # the cursor stays on the run just (un)marked: enter and s still mean that run
        runs = self.query_one(RunList)
        runs.marked = set(self.marked)
        runs.refresh_line(runs.cursor)
        self.update_bar()

    def action_grid(self) -> None:
        chosen = self.marked or ([self._selected()] if self._selected() else [])
        if chosen:
            self._grid_of_marks = bool(self.marked)
            self.app.open_panes(chosen)

    def action_new_run(self) -> None:
        self.app.action_new_run()

    def action_cycle_status(self) -> None:
        runs = self.query_one(RunList)
        runs.status = STATUSES[(STATUSES.index(runs.status) + 1) % len(STATUSES)]
        self.refresh_runs(reset=True)

    def action_cycle_order(self) -> None:
        runs = self.query_one(RunList)
        orders = ["newest", "oldest", "status", "graph"]
        runs.order = orders[(orders.index(runs.order) + 1) % len(orders)]
        self.refresh_runs()

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.add_class("shown")
        box.focus()

    @on(Input.Submitted, "#search")
    def apply_search(self, event: Input.Submitted) -> None:
        runs = self.query_one(RunList)
        runs.search = event.value.strip() or None
        event.input.remove_class("shown")
        runs.focus()
        self.refresh_runs(reset=True)

    def action_clear(self) -> None:
        runs = self.query_one(RunList)
        runs.status = runs.search = None
        box = self.query_one("#search", Input)
        box.value = ""
        box.remove_class("shown")
        runs.focus()
        self.refresh_runs(reset=True)
