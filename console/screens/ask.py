"""Small modal questions: a line of text (a reason, an answer) or a JSON document (edited args)."""

from __future__ import annotations

import json
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, TextArea

__all__ = ["AskText", "AskJSON"]


class AskText(ModalScreen[str | None]):
    """One line of text; enter accepts, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="ask.cancel")]
    DEFAULT_CSS = """
    AskText { align: center middle; }
    AskText > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary; background: $panel; padding: 1 2; }
    AskText Label { margin-bottom: 1; }
    """

    def __init__(self, question: str, *, placeholder: str = "", value: str = "") -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Label("enter accept · escape cancel", classes="hint")

    @on(Input.Submitted, "#answer")
    def accept(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskJSON(ModalScreen[Any]):
    """A JSON editor, prefilled; ctrl+s accepts only a document that parses."""

    BINDINGS = [
        Binding("ctrl+s", "accept", "accept", id="json.accept"),
        Binding("escape", "cancel", "cancel", id="json.cancel"),
    ]
    DEFAULT_CSS = """
    AskJSON { align: center middle; }
    AskJSON > Vertical { width: 90%; height: 80%; border: thick $primary; background: $panel; padding: 0 1; }
    AskJSON TextArea { height: 1fr; }
    AskJSON #error { color: $error; height: auto; }
    """

    def __init__(self, title: str, value: Any) -> None:
        super().__init__()
        self.title_text = title
        self.initial = json.dumps(value, indent=2, ensure_ascii=False)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield TextArea(self.initial, language=None, id="doc", show_line_numbers=True)
            yield Label("", id="error")
            yield Label("ctrl+s accept (must be valid JSON) · escape cancel", classes="hint")

    def action_accept(self) -> None:
        text = self.query_one("#doc", TextArea).text
        try:
            value = json.loads(text)
        except ValueError as exc:
            self.query_one("#error", Label).update(f"not valid JSON: {exc}")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
