"""Asked when quitting a console that drives runs: what becomes of them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

__all__ = ["QuitScreen"]


class QuitScreen(ModalScreen[str | None]):
    """Dismisses with "release", "leave", "cancel" or None (stay)."""

    BINDINGS = [
        Binding("w", "choose('release')", "hand to a worker", id="quit.release"),
        Binding("l", "choose('leave')", "leave for later", id="quit.leave"),
        Binding("c", "choose('cancel')", "cancel them", id="quit.cancel"),
        Binding("escape", "choose(None)", "stay", id="quit.stay"),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 74; max-width: 95%; height: auto; border: thick $warning; background: $panel; padding: 1 2; }
    QuitScreen .title { text-style: bold; margin-bottom: 1; }
    """

    def __init__(self, running: int, waiting: int) -> None:
        super().__init__()
        self.running = running
        self.waiting = waiting

    def compose(self) -> ComposeResult:
        parts = []
        if self.running:
            parts.append(f"{self.running} running")
        if self.waiting:
            parts.append(f"{self.waiting} waiting for a human")
        with Vertical():
            yield Label(f"This console drives {' and '.join(parts)}.", classes="title")
            yield Label("Each finishes the step it is in first (up to 5 s).")
            yield Label("w  hand them to a worker: released, a `vigil worker` goes on")
            yield Label("l  leave them: adopted once this console's lease lapses")
            yield Label("   (at once on this host) by a worker or `vigil resume`")
            yield Label("c  cancel them (recorded, with you as the actor)")
            yield Label("escape  stay", classes="hint")

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
