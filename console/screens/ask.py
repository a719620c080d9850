"""Small modal questions: a line of text (a reason, an answer), a pick from declared choices, or
a JSON document (edited args)."""

from __future__ import annotations

import json
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, TextArea
from textual.widgets.option_list import Option

__all__ = ["AskText", "AskChoice", "AskJSON"]


class AskText(ModalScreen[str | None]):
    """One line of text; enter accepts, escape cancels. With `required`, a blank answer is
    refused with that message and the question stays open."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="ask.cancel")]
    DEFAULT_CSS = """
    AskText { align: center middle; }
    AskText > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary; background: $panel; padding: 1 2; }
    AskText Label { margin-bottom: 1; }
    AskText #error { color: $error; width: 1fr; height: auto; }
    AskText #error.-empty { display: none; }
    """

    def __init__(self, question: str, *, placeholder: str = "", value: str = "", required: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.value = value
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Label("", id="error", classes="-empty")
            yield Label("enter accept · escape cancel", classes="hint")

    @on(Input.Submitted, "#answer")
    def accept(self, event: Input.Submitted) -> None:
        if self.required and not event.value.strip():
            error = self.query_one("#error", Label)
            error.update(self.required)
            error.remove_class("-empty")
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskChoice(ModalScreen[Any]):
    """One of the declared choices: arrows and enter, or its number; escape cancels. Dismisses
    with the choice itself (not its text), so a non-string choice is answered as declared."""

    BINDINGS = [
        Binding("escape", "cancel", "cancel", id="choice.cancel"),
        *(Binding(str(n), f"pick({n - 1})", show=False, id=f"choice.{n}") for n in range(1, 10)),
    ]
    DEFAULT_CSS = """
    AskChoice { align: center middle; }
    AskChoice > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary; background: $panel; padding: 1 2; }
    AskChoice Label { margin-bottom: 1; }
    AskChoice OptionList { height: auto; max-height: 12; margin-bottom: 1; }
    """

    def __init__(self, question: str, choices: list[Any], *, default: Any = None) -> None:
        super().__init__()
        self.question = question
        self.choices = list(choices)
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield OptionList(
                *(Option(f"{n}  {_label(c)}", id=str(n - 1)) for n, c in enumerate(self.choices, 1)),
                id="choices",
            )
            yield Label("enter or 1-9 choose · escape cancel", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one("#choices", OptionList)
        options.highlighted = self.choices.index(self.default) if self.default in self.choices else 0
        options.focus()

    @on(OptionList.OptionSelected, "#choices")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.action_pick(event.option_index)

    def action_pick(self, index: int) -> None:
        if 0 <= index < len(self.choices):
            self.dismiss(self.choices[index])

    def action_cancel(self) -> None:
        self.dismiss(None)


def _label(choice: Any) -> str:
    return choice if isinstance(choice, str) else json.dumps(choice, ensure_ascii=False)


class AskJSON(ModalScreen[Any]):
    """A JSON editor, prefilled; ctrl+s accepts only a document that parses. `text` (an earlier
    attempt) and `error` (why it was refused) reopen it where the operator left off; `text` is
    what was accepted, for the caller to keep."""

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

    def __init__(self, title: str, value: Any, *, text: str | None = None, error: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.initial = text if text is not None else json.dumps(value, indent=2, ensure_ascii=False)
        self.error = error
        self.text = self.initial

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield TextArea(self.initial, language=None, id="doc", show_line_numbers=True)
            yield Label(self.error, id="error")
            yield Label("ctrl+s accept (must be valid JSON) · escape cancel", classes="hint")

    def action_accept(self) -> None:
        text = self.query_one("#doc", TextArea).text
        try:
            value = json.loads(text)
        except ValueError as exc:
            self.query_one("#error", Label).update(f"not valid JSON: {exc}")
            return
        self.text = text
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
