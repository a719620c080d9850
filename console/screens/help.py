"""vigil's own help: every key of the screen you were on, of the approval prompt and of the whole
app, grouped by area, with what it does and its binding id (the name to remap it by in
keys.toml). It is built from the real BINDINGS and the keymap in force, so it cannot drift from
the keys that work."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

__all__ = ["HelpScreen", "known_bindings", "AREAS"]

# binding id prefix -> the heading it is listed under
AREAS = {
    "runs": "runs",
    "live": "live panes",
    "scrubber": "scrubber",
    "list": "moving in a list",
    "prompt": "approval prompt",
    "newrun": "new run",
    "ask": "a question",
    "json": "JSON editor",
    "confirm": "confirmation",
    "help": "this help",
    "app": "everywhere",
}
_NAMES = {"enter": "enter", "escape": "esc", "space": "space", "tab": "tab"}


def _own_bindings(cls: type) -> list[Binding]:
    """The bindings a vigil class declares, its vigil base classes' included (RunList gets
    VirtualList's), Textual's own left out (they are not vigil's keys)."""
    out: list[Binding] = []
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("console.") and "BINDINGS" in klass.__dict__:
            out += [b for b in klass.__dict__["BINDINGS"] if isinstance(b, Binding) and b.id]
    return out


def known_bindings() -> dict[str, Binding]:
    """Every binding id in the console (app, screens, widgets), in declaration order."""
    from .. import app, screens, widgets

    classes: list[type] = [app.VigilApp]
    for package in (screens, widgets):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            classes += [c for c in vars(module).values()
                        if isinstance(c, type) and issubclass(c, DOMNode) and c.__module__ == module.__name__]
    found: dict[str, Binding] = {}
    for cls in classes:
        for binding in _own_bindings(cls):
            found.setdefault(binding.id, binding)
    return found


class HelpScreen(ModalScreen[None]):
    """Dismisses with None; `?` (or whatever app.help is mapped to), escape or q close it."""

    BINDINGS = [
        Binding("question_mark,escape,q", "close", "close", id="help.close"),
        Binding("j", "scroll(1)", "scroll down", id="help.down"),
        Binding("k", "scroll(-1)", "scroll up", id="help.up"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 94%; max-width: 100; height: 92%; border: thick $primary; background: $panel; }
    HelpScreen #help-head { padding: 0 1; text-style: bold; color: $foreground; }
    HelpScreen #help-body { height: 1fr; background: $panel; scrollbar-size-vertical: 1; }
    HelpScreen .help-area { color: $primary; text-style: bold; padding: 0 1; margin-top: 1; }
    HelpScreen .help-rows { padding: 0 1; color: $foreground; }
    HelpScreen #help-foot { padding: 0 1; color: $text-muted; }
    """

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under
        self.sections = self._sections()

    # what is listed -------------------------------------------------------------------------

    def _sources(self) -> Iterable[Binding]:
        from ..app import VigilApp
        from .prompt import PromptScreen

        under = self.under
        yield from _own_bindings(type(under))
        seen: set[type] = set()
        for widget in under.query("*"):
            cls = type(widget)
            if cls not in seen:
                seen.add(cls)
                yield from _own_bindings(cls)
        if not isinstance(under, PromptScreen):
            yield from _own_bindings(PromptScreen)  # it opens over any screen, with `i`
        yield from _own_bindings(VigilApp)
        yield from _own_bindings(type(self))

    def _sections(self) -> list[tuple[str, list[tuple[str, str, str]]]]:
        groups: dict[str, list[tuple[str, str, str]]] = {}
        ids: set[str] = set()
        for binding in self._sources():
            if binding.id in ids:
                continue
            ids.add(binding.id)
            area = binding.id.split(".", 1)[0]
            groups.setdefault(area, []).append((self.keys_of(binding), binding.description, binding.id))
        return [(AREAS.get(area, area), rows) for area, rows in groups.items()]

    def keys_of(self, binding: Binding) -> str:
        """The keys that trigger `binding` now: the keymap's, if keys.toml remaps it."""
        keymap = getattr(self.app, "keymap_overrides", {})
        keys = keymap.get(binding.id) or binding.key
        shown = []
        for key in keys.split(","):
            key = key.strip()
            shown.append(_NAMES.get(key) or self.app.get_key_display(Binding(key, "")))
        return " ".join(shown)

    # how it is shown -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("vigil keys: key · what it does · binding id (remap it in keys.toml)", id="help-head")
            with VerticalScroll(id="help-body"):
                for title, rows in self.sections:
                    yield Label(title, classes="help-area")
                    yield Static(self._rows(rows), classes="help-rows")
            yield Label("↑ ↓ j k pgup pgdn scroll · ? esc q close", id="help-foot")

    @staticmethod
    def _rows(rows: list[tuple[str, str, str]]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (keys, description, binding_id) in enumerate(rows):
            if i:
                text.append("\n")
            text.append(f"{keys:<13} ", style="bold")
            text.append(f"{description:<26} ")
            text.append(binding_id)
        return text

    def text(self) -> str:
        """The help as plain text, in the order shown."""
        out = []
        for title, rows in self.sections:
            out.append(title)
            out += [f"  {keys:<13} {description:<26} {binding_id}" for keys, description, binding_id in rows]
        return "\n".join(out)

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_scroll(self, lines: int) -> None:
        # immediate: deferred to the next frame, presses of a held-down key all start from the
        # same line and all but one are lost
        self.query_one("#help-body", VerticalScroll).scroll_relative(y=lines, animate=False, immediate=True)

    def action_close(self) -> None:
        self.dismiss(None)
