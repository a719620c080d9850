"""One to four runs side by side, each live."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget

from ..widgets.footer import Footer
from ..widgets.runpane import RunPane

__all__ = ["LiveScreen"]


class LiveScreen(Screen[None]):
    BINDINGS = [
        Binding("tab", "next_pane(1)", "next pane", id="live.next"),
        Binding("shift+tab", "next_pane(-1)", "previous pane", show=False, id="live.previous"),
        Binding("s", "scrub", "scrubber", id="live.scrub"),
        Binding("x", "close_pane", "close pane", id="live.close"),
        Binding("less_than_sign", "move(-1)", "move left", show=False, id="live.left"),
        Binding("greater_than_sign", "move(1)", "move right", show=False, id="live.right"),
        Binding("l", "layout", "layout", show=False, id="live.layout"),
        Binding("q,escape", "app.pop_screen", "back", id="live.back"),
    ]
    DEFAULT_CSS = """
    LiveScreen Grid { grid-size: 1; grid-gutter: 0; }
    LiveScreen Grid.cols-2 { grid-size: 2; }
    LiveScreen Grid.cols-2x2 { grid-size: 2 2; }
    """

    # Textual repaints the whole screen whenever focus moves; here the two panes whose border
    # changes repaint themselves (RunPane._light), so a tab redraws those two, not all four and
    # the footer (bench/NOTES.md, "2x2 grid").
    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)[:4]
        self.stacked = False

    def compose(self) -> ComposeResult:
        yield Grid(*(RunPane(r) for r in self.run_ids), id="grid")
        yield Footer()

    def on_mount(self) -> None:
        self._arrange()
        panes = self.query(RunPane)
        if panes:
            panes.first().focus()

    def _arrange(self) -> None:
        grid = self.query_one(Grid)
        n = len(self.query(RunPane))
        grid.set_class(n == 2 and not self.stacked, "cols-2")
        grid.set_class(n >= 3 and not self.stacked, "cols-2x2")

    def on_resize(self) -> None:
        self._arrange()

    def log_changed(self, batch) -> None:
        if not self.is_attached:
            return
        records = list(batch.records)
        for pane in self.query(RunPane):
            pane.log_changed(records)
        live = getattr(self.app, "live_tokens", None)
        if batch.interrupts and live is not None and live.feed is not None:
            live.feed.poke()  # a run started, was adopted or released: its owner may have changed

    def on_token(self, run_id: str, action_id: str, token: str) -> None:
        for pane in self.query(RunPane):
            if pane.run_id == run_id:
                pane.token(action_id, token)

    def on_token_gap(self, run_id: str) -> None:
        for pane in self.query(RunPane):
            if pane.run_id == run_id:
                pane.token_gap()

    def _focused(self) -> RunPane | None:
        node = self.focused
        while node is not None and not isinstance(node, RunPane):
            node = node.parent
        return node if isinstance(node, RunPane) else (self.query(RunPane).first() if self.query(RunPane) else None)

    def action_next_pane(self, step: int) -> None:
        """Focus moves pane to pane (its border lights up), not through the widgets inside."""
        panes = list(self.query(RunPane))
        if not panes:
            return
        current = self._focused()
        i = panes.index(current) if current in panes else -step
        # at once, not `pane.focus()` (a callback for later): a second tab already read would
        # otherwise start from the same pane and both would land on the next one
        self.set_focus(panes[(i + step) % len(panes)])

    def action_scrub(self) -> None:
        pane = self._focused()
        if pane is not None:
            self.app.open_scrubber(pane.run_id)

    def action_close_pane(self) -> None:
        pane = self._focused()
        if pane is None:
            return
        pane.remove()
        self.call_after_refresh(self._after_close)

    def _after_close(self) -> None:
        if not self.query(RunPane):
            self.app.pop_screen()
        else:
            self._arrange()
            self.query(RunPane).first().focus()

    def action_move(self, step: int) -> None:
        pane = self._focused()
        grid = self.query_one(Grid)
        panes = list(self.query(RunPane))
        if pane is None or len(panes) < 2:
            return
        i = panes.index(pane)
        j = (i + step) % len(panes)
        if j < i:
            grid.move_child(pane, before=panes[j])
        else:
            grid.move_child(pane, after=panes[j])
        self.set_focus(pane)

    def action_layout(self) -> None:
        self.stacked = not self.stacked
        self._arrange()
