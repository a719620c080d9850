"""One run, live: a header, a tail of its events, the model's text as it streams, its state."""

from __future__ import annotations

from typing import Any, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Label, Log, Static, Tree

from kernel.codec import Record
from kernel.events import ActionFailed, ActionSucceeded, RunStarted, StepCompleted, StepStarted
from kernel.limits import describe, waiting

from ..format import duration, summary
from .runlist import STATUS_STYLE

__all__ = ["RunPane"]

_TREE_CHILDREN = 50
W = TypeVar("W", bound=Widget)


class RunPane(Vertical, can_focus=True):
    DEFAULT_CSS = """
    RunPane { border: round $foreground 30%; height: 1fr; }
    RunPane.-lit { border: heavy $accent; }
    RunPane #head { height: 1; width: 1fr; background: $panel; padding: 0 1; }
    RunPane #body { height: 1fr; }
    RunPane Log { width: 3fr; overflow-x: hidden; }
    RunPane Tree { width: 2fr; border-left: solid $secondary; }
    RunPane #stream { height: auto; max-height: 4; color: $accent; padding: 0 1; }
    RunPane #queue { height: 1; color: $warning; padding: 0 1; display: none; }
    RunPane.narrow Tree { display: none; }
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.info: Any = None
        self.nodes: set[str] = set()
        self.steps = 0
        self.stream = ""
        self._streaming: str | None = None  # the action whose tokens `stream` shows
        self._finished: set[str] = set()  # actions whose result is in the log: late tokens are dropped
        self._stream_dirty = False
        self._state_due = True
        self.tokens = ""
        self.queue_text = ""  # what waits for a concurrency slot, as last shown
        self.shown_seq = 0  # the last seq written to the tail: each seq is written once
        self._loaded = False
        self._catching = False
        self._again = False
        self.title_text = run_id  # the border title: the run, then its graph once RunStarted is read

    def compose(self) -> ComposeResult:
        yield Label(self.run_id, id="head")
        yield Label("", id="queue", markup=False)
        with Horizontal(id="body"):
            yield Log(max_lines=1000, auto_scroll=True)
            yield Tree("state", id="state")
        yield Static("", id="stream", markup=False)

    def watch_has_focus(self, has_focus: bool) -> None:
        self._light()

    def on_descendant_focus(self) -> None:
        self._light()

    def on_descendant_blur(self) -> None:
        self._light()

    def _light(self) -> None:
        """The border lights up while focus is on the pane or inside it.

        Not `:focus-within` (nor `:focus`, whose watcher Textual runs here): either restyles the
        pane's whole subtree, and Textual then sees every node's styles as changed, so the Log
        and the Tree drop their rendered lines and ask for a layout: a full re-render of two
        panes per tab (bench/NOTES.md, "2x2 grid"). The class changes the pane's own border
        only, so the pane alone is restyled; nothing it contains inherits from a border. The
        title is made bold here, not by `border-title-style`, which Textual passes down to the
        pane's children as a change (they would all re-render)."""
        # each widget's own flag, set as its Focus or Blur is handled: `screen.focused` can be
        # None for a moment while a screen is pushed, after the pane's Focus was posted
        lit = self.has_focus or any(node.has_focus for node in self.walk_children(Widget))
        if lit != self.has_class("-lit"):
            self.set_class(lit, "-lit", update=False)
            self.app.stylesheet.update_nodes([self], animate=False)
            self._show_title()

    def _show_title(self) -> None:
        title = Content(self.title_text)  # plain text: a run id or a graph name is not markup
        self.border_title = title.stylize("bold") if self.has_class("-lit") else title

    def _part(self, selector: str, kind: type[W]) -> W | None:
        """One of the pane's widgets, or None once they are gone: Textual takes a closing pane's
        children down before it cancels the pane's workers, so a read in flight can come back to
        a pane without its parts, and a NoMatches there took the whole console down."""
        try:
            return self.query_one(selector, kind)
        except NoMatches:
            return None

    def on_resize(self) -> None:
        # the state tree needs room; a narrow pane shows the tail only
        self.set_class(self.size.width < 100, "narrow")
        self._update_head()

    def on_mount(self) -> None:
        self._show_title()
        self.load()
        self.set_interval(0.05, self._flush_stream)
        self.set_interval(0.5, self._maybe_state)
        self.set_interval(1.0, self._tick)
        self.set_interval(0.25, self._show_queue)
        live = getattr(self.app, "live_tokens", None)
        if live is not None:  # tokens from the process that drives this run, if not this one
            live.opened(self.run_id)

    def on_unmount(self) -> None:
        live = getattr(self.app, "live_tokens", None)
        if live is not None:
            live.closed(self.run_id)

    @work(group="pane-load")
    async def load(self) -> None:
        store = self.app.store
        self.info = await store.run(self.run_id)
        first = max(1, self.info.last_seq - 199)
        records = await store.events(self.run_id, first, limit=200)
        # steps before the first event shown; the ones shown are counted as they are written
        steps = await store.seqs(self.run_id, ["StepCompleted"])
        self.steps = sum(1 for seq in steps if seq < first)
        self.shown_seq = first - 1
        self._accept(records)
        self._loaded = True
        self._state_due = True
        self._update_head()
        self.catch_up()  # whatever the feed delivered while this read was under way

    def _accept(self, records: list[Record]) -> bool:
        """Write the records that follow the last seq shown, each seq once and in order.
        False when one is missing (the feed ran ahead of this pane): then read the log."""
        fresh = []
        expect = self.shown_seq + 1
        for record in records:
            if record.seq < expect:
                continue  # shown already (read by `load` and delivered by the feed too)
            if record.seq > expect:
                self.absorb(fresh)
                return False
            fresh.append(record)
            expect += 1
        self.absorb(fresh)
        return True

    @work(group="pane-catch-up")
    async def catch_up(self) -> None:
        """Read the log from the last seq shown until it has nothing newer (one at a time)."""
        if self._catching:
            self._again = True
            return
        self._catching = True
        try:
            while True:
                self._again = False
                records = await self.app.store.events(self.run_id, self.shown_seq + 1, limit=500)
                self._accept(records)
                if len(records) < 500 and not self._again:
                    break
        finally:
            self._catching = False

    def absorb(self, records: list[Record]) -> None:
        """Coalesced: one write to the log widget per flush, whatever the number of events."""
        lines = []
        for record in records:
            event = record.event
            lines.append(f"{record.seq:>6} {record.type:<17} {summary(record.event)}")
            self.shown_seq = record.seq
            if isinstance(event, StepStarted):
                self.nodes.add(event.node)
            elif isinstance(event, StepCompleted):
                self.nodes.discard(event.node)
                self.steps += 1
                self._state_due = True
                if self.stream:  # an update of the (auto-height) stream line costs a layout
                    self.stream = ""
                    self._stream_dirty = True
            elif isinstance(event, (ActionSucceeded, ActionFailed)):
                # The durable result (or failure) replaces the streamed text; a token still in
                # flight from another process (it can arrive after the event) must not bring it
                # back.
                self._finished.add(event.action_id)
                if event.action_id == self._streaming:
                    self._streaming = None
                    self.stream = ""
                    self._stream_dirty = True
            elif isinstance(event, RunStarted):
                self.title_text = f"{self.run_id} · {event.graph}"
                self._show_title()
        if lines:
            log = self._part("Log", Log)
            if log is not None:
                log.write_lines(lines)

    def log_changed(self, records: list[Record]) -> None:
        mine = [r for r in records if r.run_id == self.run_id]
        if not mine:
            return
        # before `load` has read the log it catches up itself; after, a gap is read from the log
        if self._loaded and not self._accept(mine):
            self.catch_up()
        self.refresh_info()

    def token(self, action_id: str, token: str) -> None:
        if action_id in self._finished:
            return
        self._streaming = action_id
        self.stream = (self.stream + token)[-400:]
        self._stream_dirty = True

    def token_gap(self) -> None:
        """Tokens were lost on the way (a dropped connection): start again rather than glue."""
        if self.stream:
            self.stream = "… "
            self._stream_dirty = True

    def _flush_stream(self) -> None:
        if self._stream_dirty:
            self._stream_dirty = False
            stream = self._part("#stream", Static)
            if stream is not None:
                stream.update(f"✎ {self.stream}" if self.stream else "")

    def _show_queue(self) -> None:
        """What of this run waits for a concurrency slot (kernel.limits): status of the process
        that drives the run, never in the log, so it is polled here (coalesced, a dict read)
        rather than told per acquire; a run driven elsewhere: the line its owner sends over the
        live channel (console/livetokens.py)."""
        live = getattr(self.app, "live_tokens", None)
        text = describe(waiting(self.run_id)) or (live.queue_text(self.run_id) if live is not None else "")
        if text != self.queue_text:
            self.queue_text = text
            line = self._part("#queue", Label)
            if line is None:
                return
            line.update(f"⧗ {text}" if text else "")
            line.display = bool(text)

    @work(exclusive=True, group="pane-info")
    async def refresh_info(self) -> None:
        self.info = await self.app.store.run(self.run_id)
        self._update_head()

    def _tick(self) -> None:
        if self.info is not None and self.info.status in ("running", "waiting"):
            self._update_head()

    def _update_head(self) -> None:
        info = self.info
        if info is None:
            return
        icon, _ = STATUS_STYLE.get(info.status, ("?", ""))
        end = info.updated_ns if info.status not in ("running", "waiting") else self.app.now()
        nodes = ", ".join(sorted(self.nodes)) if info.status == "running" and self.nodes else "-"
        took = duration(max(0, end - info.created_ns))
        if self.size.width < 60:  # a grid cell: what fits in 36 cells, most telling first
            waiting = f" ⚑{info.pending}" if info.pending else ""
            running = f" · {nodes}" if nodes != "-" else ""
            text = f"{icon} {info.status}{waiting} {took} · {info.last_seq} ev · {self.steps} steps{running}"
        else:
            waiting = f" · ⚑ {info.pending} waiting" if info.pending else ""
            text = (f"{icon} {info.status}{waiting} · {took} · "
                    f"{info.last_seq} events · {self.steps} steps · nodes {nodes}{self.tokens}")
        head = self._part("#head", Label)
        if head is not None:
            head.update(text, layout=False)  # one line, 1fr wide: its size never changes

    def _maybe_state(self) -> None:
        if self._state_due:
            self._state_due = False
            self.load_state()

    @on(Tree.NodeExpanded, "#state")
    def _expand(self, event: Tree.NodeExpanded) -> None:
        node = event.node
        if node.data is not None and not node.children:
            _fill(node, node.data)

    @work(exclusive=True, group="pane-state")
    async def load_state(self) -> None:
        view = await self.app.store.state_at(self.run_id)
        tree = self._part("Tree", Tree)
        if tree is None:
            return
        tree.clear()
        tree.root.label = f"state @ {view.seq}"
        usage = view.state.get("usage")
        if isinstance(usage, dict) and usage.get("input_tokens") is not None:
            self.tokens = f" · tokens {usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out"
            self._update_head()
        _fill(tree.root, view.state)
        tree.root.expand()


def _fill(node: Any, value: Any) -> None:
    """One level of `value` under `node`. A branch gets its own children when it is first
    expanded: the state is rebuilt on every step and only the top level shows (a long
    conversation filled in whole was hundreds of nodes a rebuild, most of a live pane's CPU).
    Labels are Text, not markup: a model's "[/x]" is shown as written (as markup it raised)."""
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value)) if isinstance(value, list) else []
    for key, child in items[:_TREE_CHILDREN]:
        if isinstance(child, (dict, list)):
            node.add(Text(f"{key} ({len(child)})"), data=child)
        else:
            text = repr(child) if not isinstance(child, str) else child
            node.add_leaf(Text(f"{key}: {text[:200]}"))
    if len(items) > _TREE_CHILDREN:
        node.add_leaf(Text(f"… {len(items) - _TREE_CHILDREN} more"))
