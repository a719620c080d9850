"""A pending interrupt, shown exactly: what will run, with which arguments, and the keys to
decide. The decision names the payload hash this screen showed; if the interrupt was resolved
elsewhere meanwhile, the prompt says so and closes."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from rich.style import Style
from rich.text import Text

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from kernel.codec import short
from kernel.errors import VigilError
from kernel.events import ActionFailed, ActionRequested, ActionSucceeded, InterruptRaised
from kernel.owner import current_actor
from kernel.engine.steer import steer

from .ask import AskChoice, AskJSON, AskText

__all__ = ["PromptScreen"]

SECRET = re.compile(r"\[REDACTED:[^\]]*\]")  # kernel/redact.py's marker, left in the log for a secret
TRANSCRIPT = 6  # messages of the conversation shown
RECENT_EVENTS = 50  # events read back from the interrupt for the tool results before it
CLIP = 300  # characters of one message or tool result


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
        Binding("o", "open_run", "open run", id="prompt.open"),
        Binding("s", "skip", "next", id="prompt.skip"),
        Binding("escape,q", "close", "close", id="prompt.close"),
    ]
    COMPONENT_CLASSES = {"prompt--secret", "prompt--heading", "prompt--key", "prompt--who"}
    # The title, the arguments and the keys always show at 80x24; the context takes what is left
    # and scrolls (it has the focus, so arrows and page keys move it).
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 96%; height: 96%; border: thick $warning; background: $panel; }
    PromptScreen #head { padding: 0 1; height: auto; }
    PromptScreen #title { text-style: bold; color: $warning; padding: 0 1; }
    PromptScreen VerticalScroll { border: round $primary; margin: 0 1; background: $panel; }
    PromptScreen VerticalScroll:focus { border: round $accent; }
    PromptScreen #args { height: auto; max-height: 10; }
    PromptScreen #context { height: 1fr; min-height: 3; }
    PromptScreen #status { color: $error; padding: 0 1; height: auto; }
    PromptScreen #status.-empty { display: none; }
    PromptScreen #keys { padding: 0 1; height: auto; color: $text-muted; }
    PromptScreen > .prompt--secret { color: $error; text-style: bold underline; }
    PromptScreen > .prompt--heading { color: $warning; text-style: bold; }
    PromptScreen > .prompt--key { color: $foreground; text-style: bold; }
    PromptScreen > .prompt--who { color: $primary; }
    """
    AUTO_FOCUS = "#context"

    def __init__(self, run_id: str, graph: str, raised: InterruptRaised, queue: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.graph = graph
        self.raised = raised
        self.queue = queue
        self.busy = False
        self.edited: str | None = None  # the text of the last edit sent
        self.context_text: str | None = None  # the context as plain text, once read

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        kind = self.raised.kind
        allowed = {
            "approval": {"decide:approve", "reject", "edit", "decide:approve:True"},
            "input": {"answer", "reject"},
            "in_doubt": {"happened", "decide:retry", "decide:fail"},
        }[kind]
        key = ":".join([action, *map(str, parameters)])
        if action in ("skip", "close", "open_run"):
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
            with VerticalScroll(id="args") as args:
                args.border_title = {"approval": "what will run", "in_doubt": "what may have run"}.get(r.kind, "the question")
                yield Static(id="payload")
            with VerticalScroll(id="context") as context:
                context.border_title = "context (↑↓ scroll)"
                yield Static("reading the run…", id="context-body")
            yield Label("", id="status", classes="-empty")
            yield Static(id="keys")

    def on_mount(self) -> None:
        self.query_one("#payload", Static).update(self._body())
        self._load_context()
        self.call_after_refresh(self._show_keys)

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_keys)

    def _show_keys(self) -> None:
        keys = self.query_one("#keys", Static)
        keys.update(self._keys(keys.content_size.width or self.size.width - 6))

    def _style(self, component: str) -> Style:
        return self.get_component_rich_style(component, partial=True)

    def _marked(self, text: str, style: Style | str = "") -> Text:
        """`text` with every secret marker drawn apart, so nobody takes it for the value."""
        out = Text(text, style=style)
        secret = self._style("prompt--secret")
        for m in SECRET.finditer(text):
            out.stylize(secret, m.start(), m.end())
        return out

    def _body(self) -> Text:
        r = self.raised
        payload: Any = r.payload
        if r.kind == "approval" and isinstance(payload, dict):
            head = f"tool {payload.get('tool')} will run with these arguments:"
            shown = payload.get("args")
        elif r.kind == "in_doubt" and isinstance(payload, dict):
            head = (f"the process died while {payload.get('kind')} {payload.get('name')} was running,\n"
                    "so nobody knows whether it happened. Its input was:")
            shown = payload.get("input")
        elif r.kind == "input" and isinstance(payload, dict) and "question" in payload:
            out = self._marked(str(payload["question"]))
            choices = payload.get("choices")
            if isinstance(choices, list) and choices:
                out.append("\n")
                out.append_text(self._marked("choices: " + " · ".join(
                    f"{n} {c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)}"
                    for n, c in enumerate(choices, 1))))
            if payload.get("default") is not None:
                out.append_text(self._marked(f"\ndefault: {payload['default']}"))
            rest = {k: v for k, v in payload.items() if k not in ("question", "choices", "default")}
            if rest:  # nothing the payload holds is left out
                out.append_text(self._marked("\n" + json.dumps(rest, indent=2, ensure_ascii=False)))
            return out
        else:
            head, shown = "", payload
        text = json.dumps(shown, indent=2, ensure_ascii=False)
        out = Text(head + "\n" if head else "")
        out.append_text(self._marked(text))
        if SECRET.search(text):
            out.append("\n")
            out.append_text(self._marked("[REDACTED:kind] is a secret: shown and logged only as its kind"))
        return out

    def _keys(self, width: int) -> Text:
        """Every key this interrupt takes, from the live bindings (so a remapped key shows as
        remapped), on as many lines of `width` as they need, where a footer would be cut at 80
        columns. A key and what it does are never split over two lines."""
        keys: dict[str, list[str]] = {}
        described: dict[str, str] = {}
        for active in self.active_bindings.values():
            binding = active.binding
            if active.node is self and active.enabled and binding.id:
                keys.setdefault(binding.id, []).append(self.app.get_key_display(binding))
                described[binding.id] = binding.description
        # and how to see the rest: an app binding, not among a modal screen's active ones
        help_key = getattr(self.app, "keymap_overrides", {}).get("app.help") or next(
            (b.key for b in getattr(type(self.app), "BINDINGS", []) if getattr(b, "id", None) == "app.help"), None)
        if help_key:
            keys["app.help"] = [self.app.get_key_display(Binding(k.strip(), "")) for k in help_key.split(",")]
            described["app.help"] = "all keys"
        out = Text()
        key_style = self._style("prompt--key")
        used = 0
        for binding_id, shown in keys.items():
            key, what = " ".join(shown), f" {described[binding_id]}"
            size = len(key) + len(what)
            if used and used + 2 + size > width:
                out.append("\n")
                used = 0
            elif used:
                out.append("  ")
                used += 2
            out.append(key, style=key_style)
            out.append(what)
            used += size
        return out

    # context ------------------------------------------------------------------------------

    @work(exclusive=True, group="prompt-context")
    async def _load_context(self) -> None:
        """The conversation as of the interrupt (the nearest snapshot plus a short fold, never
        the whole run) and the tool results among the events just before it."""
        store = self.app.store
        try:
            seq = next((p.seq for p in await store.interrupts(self.run_id)
                        if p.interrupt_id == self.raised.interrupt_id), None)
            if seq is None:
                seq = await store.last_seq(self.run_id)
            state = (await store.state_at(self.run_id, seq)).state
            recent = await store.events(self.run_id, max(1, seq - RECENT_EVENTS), seq - 1)
        except VigilError as exc:
            self._show_context(Text(f"could not read the run: {exc}"))
            return
        self._show_context(self._context_of(state, recent))

    def _show_context(self, text: Text) -> None:
        self.context_text = text.plain
        self.query_one("#context-body", Static).update(text)

    def _context_of(self, state: dict, recent: list) -> Text:
        heading = self._style("prompt--heading")
        who = self._style("prompt--who")
        out = Text()
        messages = state.get("messages") if isinstance(state, dict) else None
        messages = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        said = next((m for m in reversed(messages) if m.get("role") == "assistant" and m.get("content")), None)
        if said is not None:
            out.append("the agent's last message\n", style=heading)
            out.append_text(self._marked(_clip(str(said["content"]))))
            out.append("\n")
        if messages:
            tail = messages[-TRANSCRIPT:]
            out.append(f"\ntranscript (last {len(tail)} of {len(messages)} messages)\n", style=heading)
            for m in tail:
                role = str(m.get("role", "?"))
                if role == "tool":
                    role = f"tool {m.get('name', '')}".strip()
                out.append(f"{role:<10} ", style=who)
                line = str(m.get("content") or "")
                calls = m.get("tool_calls") or []
                if calls:
                    line += " → " + ", ".join(
                        f"{c.get('name')}({short(c.get('arguments') or {}, 80)})" for c in calls if isinstance(c, dict))
                out.append_text(self._marked(_clip(" ".join(line.split()))))
                out.append("\n")
        # An agent's finished tool calls are in its transcript already; other graphs (and calls
        # of this very step, not yet folded into the state) show from the log.
        in_transcript = any(m.get("role") == "tool" for m in messages)
        names = {r.event.action_id: r.event.name for r in recent
                 if isinstance(r.event, ActionRequested) and r.event.kind == "tool"}
        results = []
        for r in recent:
            event = r.event
            if not isinstance(event, (ActionSucceeded, ActionFailed)) or event.action_id not in names:
                continue
            if in_transcript and not event.action_id.startswith(self.raised.step_id + "#"):
                continue
            what = short(event.output, CLIP) if isinstance(event, ActionSucceeded) else f"failed: {event.error}"
            results.append((r.seq, names[event.action_id], what))
        if results:
            out.append("\nrecent tool results\n", style=heading)
            for seq, name, what in results[-TRANSCRIPT:]:
                out.append(f"{name} ", style=who)
                out.append(f"(seq {seq}) → ")
                out.append_text(self._marked(_clip(what)))
                out.append("\n")
        if not out.plain:
            out.append("no conversation or tool results before this question")
        out.rstrip()
        return out

    # decisions ----------------------------------------------------------------------------

    def action_decide(self, decision: str, always: bool = False, value: Any = None) -> None:
        if not self.busy:
            self.busy = True
            self._status(f"sending {decision}…")
            self._send(decision, value, always)

    def action_reject(self) -> None:
        def done(reason: str | None) -> None:
            if reason is not None:
                self.action_decide("reject", False, reason)

        self.app.push_screen(
            AskText("Why reject? (the agent receives this)", placeholder="reason",
                    required="a reason is needed: the agent reads it to decide what to do instead"),
            done,
        )

    def action_edit(self, text: str | None = None, error: str = "") -> None:
        """The JSON editor; after a refused edit, again with the operator's text and the reason."""
        args = (self.raised.payload or {}).get("args", {})
        ask = AskJSON(f"edit the arguments of {self.raised.payload.get('tool')}", args, text=text, error=error)

        def done(value: Any) -> None:
            if value is not None:
                self.edited = ask.text
                self.action_decide("edit", False, value)

        self.app.push_screen(ask, done)

    def action_open_run(self) -> None:
        """The run's live pane; the question stays in the queue (`i` brings it back)."""
        self.dismiss(None)
        self.app.open_panes([self.run_id])

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
            self._status(message)
            if decision == "edit":  # what the operator typed is kept, not the original
                self.action_edit(self.edited, message)
            return
        self.app.notify(f"{decision} sent for {self.raised.title}", timeout=3)
        self.dismiss(decision)

    def _status(self, message: str) -> None:
        status = self.query_one("#status", Label)
        status.update(message)
        status.set_class(not message, "-empty")

    def resolved_elsewhere(self) -> None:
        if not self.busy:
            self.app.notify(f"{self.raised.interrupt_id} was resolved elsewhere meanwhile", severity="warning")
            self.dismiss(None)


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"
