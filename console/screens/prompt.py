"""A pending interrupt, shown exactly: what will run, with which arguments, and the keys to
decide. The decision names the payload hash this screen showed; if the interrupt was resolved
elsewhere meanwhile, the prompt says so and closes."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from kernel.errors import VigilError
from kernel.events import InterruptRaised
from kernel.owner import current_actor
from kernel.steer import steer

from .ask import AskChoice, AskJSON, AskText

__all__ = ["PromptScreen"]


class PromptScreen(ModalScreen[str | None]):
    """Dismisses with "skip" (show the next one), the decision made, or None (closed)."""

    BINDINGS = [
        Binding("a", "decide('approve')", "approve", id="prompt.approve"),
        Binding("r", "reject", "reject", id="prompt.reject"),
        Binding("e", "edit", "edit args", id="prompt.edit"),
        Binding("A", "decide('approve', True)", "approve tool for run", id="prompt.always"),
        Binding("t", "answer", "answer", id="prompt.answer"),
        Binding("h", "happened", "it happened", id="prompt.happened"),
        Binding("R", "decide('retry')", "run again", id="prompt.retry"),
        Binding("f", "decide('fail')", "fail run", id="prompt.fail"),
        Binding("s", "skip", "next", id="prompt.skip"),
        Binding("escape,q", "close", "close", id="prompt.close"),
    ]
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 96%; height: 90%; border: thick $warning; background: $panel; }
    PromptScreen #head { padding: 0 1; height: auto; }
    PromptScreen #title { text-style: bold; color: $warning; padding: 0 1; }
    PromptScreen VerticalScroll { height: 1fr; border: round $primary; margin: 0 1; }
    PromptScreen #status { color: $error; padding: 0 1; height: auto; }
    """

    def __init__(self, run_id: str, graph: str, raised: InterruptRaised, queue: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.graph = graph
        self.raised = raised
        self.queue = queue
        self.busy = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        kind = self.raised.kind
        allowed = {
            "approval": {"decide:approve", "reject", "edit", "decide:approve:True"},
            "input": {"answer", "reject"},
            "in_doubt": {"happened", "decide:retry", "decide:fail"},
        }[kind]
        key = ":".join([action, *map(str, parameters)])
        if action in ("skip", "close"):
            return True
        return key in allowed or action in allowed

    def compose(self) -> ComposeResult:
        r = self.raised
        node = r.step_id.split(".", 1)[-1]
        with Vertical():
            yield Label(
                f"run {self.run_id} · {self.graph} · node {node} · {r.kind} · {self.queue} waiting in all",
                id="head",
            )
            yield Label(r.title, id="title")
            with VerticalScroll():
                yield Static(self._body(), id="payload", markup=False)
            yield Label("", id="status")
            yield Footer()

    def _body(self) -> str:
        r = self.raised
        payload: Any = r.payload
        if r.kind == "approval" and isinstance(payload, dict):
            args = json.dumps(payload.get("args"), indent=2, ensure_ascii=False)
            return f"tool {payload.get('tool')} will run with these arguments:\n\n{args}"
        if r.kind == "in_doubt" and isinstance(payload, dict):
            text = json.dumps(payload.get("input"), indent=2, ensure_ascii=False)
            return (f"the process died while {payload.get('kind')} {payload.get('name')} was running,\n"
                    f"so nobody knows whether it happened. Its input was:\n\n{text}\n\n"
                    "h: it happened (give its output) · R: run it again · f: fail the run")
        return json.dumps(payload, indent=2, ensure_ascii=False)

    # decisions ----------------------------------------------------------------------------

    def action_decide(self, decision: str, always: bool = False, value: Any = None) -> None:
        if not self.busy:
            self.busy = True
            self.query_one("#status", Label).update(f"sending {decision}…")
            self._send(decision, value, always)

    def action_reject(self) -> None:
        def done(reason: str | None) -> None:
            if reason is not None:
                self.action_decide("reject", False, reason)

        self.app.push_screen(AskText("Why reject? (the agent receives this)", placeholder="reason"), done)

    def action_edit(self) -> None:
        args = (self.raised.payload or {}).get("args", {})

        def done(value: Any) -> None:
            if value is not None:
                self.action_decide("edit", False, value)

        self.app.push_screen(AskJSON(f"edit the arguments of {self.raised.payload.get('tool')}", args), done)

    def action_answer(self) -> None:
        payload = self.raised.payload if isinstance(self.raised.payload, dict) else {}
        choices = payload.get("choices")

        def done(answer: Any) -> None:
            if answer is not None:
                self.action_decide("answer", False, answer)

        if isinstance(choices, list) and choices:  # only a declared choice answers it: pick one
            self.app.push_screen(AskChoice(self.raised.title, choices, default=payload.get("default")), done)
            return
        self.app.push_screen(AskText(self.raised.title, value=str(payload.get("default", ""))), done)

    def action_happened(self) -> None:
        def done(value: Any) -> None:
            if value is not None:
                self.action_decide("answer", False, value)

        self.app.push_screen(AskJSON("its output (as JSON)", {}), done)

    def action_skip(self) -> None:
        self.dismiss("skip")

    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="prompt")
    async def _send(self, decision: str, value: Any, always: bool) -> None:
        body = {
            "interrupt_id": self.raised.interrupt_id, "decision": decision, "value": value,
            "payload_hash": self.raised.payload_hash, "always": always,
            "actor": msgspec.to_builtins(current_actor()),
        }
        try:
            await steer(self.app.runtime, self.run_id, "resolve", body)
        except VigilError as exc:
            self.busy = False
            message = str(exc)
            if "already resolved" in message or "has no interrupt" in message:
                self.app.notify(f"{self.raised.interrupt_id} was resolved elsewhere meanwhile", severity="warning")
                self.dismiss(None)
                return
            if "has ended" in message or "being cancelled" in message:
                self.app.notify(message, severity="warning")
                self.dismiss(None)
                return
            self.query_one("#status", Label).update(message)
            return
        self.app.notify(f"{decision} sent for {self.raised.title}", timeout=3)
        self.dismiss(decision)

    def resolved_elsewhere(self) -> None:
        if not self.busy:
            self.app.notify(f"{self.raised.interrupt_id} was resolved elsewhere meanwhile", severity="warning")
            self.dismiss(None)
