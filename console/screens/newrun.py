"""Start a run: pick a registered graph, give its input as JSON (prefilled with a sample)."""

from __future__ import annotations

import json
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, TextArea
from textual.widgets.option_list import Option

from kernel.registry import Registry

__all__ = ["NewRunScreen"]


class NewRunScreen(ModalScreen[tuple[str, Any, bool] | None]):
    """Dismisses with (graph, input, queued for a worker) or None."""

    BINDINGS = [
        Binding("ctrl+s", "start", "start", id="newrun.start"),
        Binding("ctrl+w", "start(True)", "queue for a worker", id="newrun.queue"),
        Binding("escape", "cancel", "cancel", id="newrun.cancel"),
    ]
    DEFAULT_CSS = """
    NewRunScreen { align: center middle; }
    NewRunScreen > Vertical { width: 90%; height: 85%; border: thick $primary; background: $panel; padding: 0 1; }
    NewRunScreen OptionList { height: auto; max-height: 8; }
    NewRunScreen TextArea { height: 1fr; }
    NewRunScreen #error { color: $error; height: auto; }
    """

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self.registry = registry
        from kernel.demos import samples

        self.samples = samples()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("graph (↑↓), then its input as JSON\nctrl+s start here · ctrl+w queue for a worker · escape cancel")
            yield OptionList(*(Option(f"{g.name}  ·  {g.description}", id=g.name) for g in self.registry), id="graphs")
            yield TextArea("{}", id="input", show_line_numbers=True)
            yield Label("", id="error")

    def on_mount(self) -> None:
        graphs = self.query_one(OptionList)
        graphs.highlighted = 0
        graphs.focus()

    @on(OptionList.OptionHighlighted, "#graphs")
    def prefill(self, event: OptionList.OptionHighlighted) -> None:
        sample = self.samples.get(event.option.id or "", {})
        self.query_one("#input", TextArea).text = json.dumps(sample, indent=2)

    @on(OptionList.OptionSelected, "#graphs")
    def to_input(self) -> None:
        self.query_one("#input", TextArea).focus()

    def action_start(self, queue: bool = False) -> None:
        graphs = self.query_one(OptionList)
        if graphs.highlighted is None:
            return
        graph = graphs.get_option_at_index(graphs.highlighted).id
        try:
            value = json.loads(self.query_one("#input", TextArea).text or "null")
        except ValueError as exc:
            self.query_one("#error", Label).update(f"the input is not valid JSON: {exc}")
            return
        self.dismiss((graph, value, queue))

    def action_cancel(self) -> None:
        self.dismiss(None)
