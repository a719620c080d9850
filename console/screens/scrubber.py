"""Walk a run's history event by event: the event, the state as of it (snapshot + fold, from
the kernel), the diff from the state before, and whether the step's hash verifies."""

from __future__ import annotations

import asyncio

import msgspec
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Label

from kernel.codec import Corrupt, Unknown, canonical_hash, to_builtins
from kernel.errors import VigilError
from kernel.events import StepCompleted
from kernel.verify import verify_run

from ..artifactcmds import page_artifact, ref_in, ref_lines
from ..format import record_json
from ..statetext import capped as _capped, diff_lines, pretty as _pretty
from ..widgets.docview import DocView
from ..widgets.footer import Footer
from ..widgets.timeline import Timeline
from .scrubfilters import FAILURES, ONLY, FilteredViews

__all__ = ["ScrubberScreen", "diff_lines"]

_json = msgspec.json.Encoder()
STEP = ("StepCompleted",)
INTERRUPTS = ("InterruptRaised",)


def _event_first(record) -> dict:
    """The event's own fields first, where a short terminal shows them (a note's payload, a
    failure's class), then where it sits in the log (pos, run_id, seq, ts_ns)."""
    full = record_json(record)
    where = {key: full.pop(key) for key in ("pos", "run_id", "seq", "ts_ns")}
    return {**full, **where}


class ScrubberScreen(FilteredViews, Screen[None]):
    BINDINGS = [
        Binding("left", "step_event(-1)", "event ←", show=False, id="scrubber.prev"),
        Binding("right", "step_event(1)", "event →", show=False, id="scrubber.next"),
        Binding("left_square_bracket", "jump('step', False)", "step ←", id="scrubber.prev_step"),
        Binding("right_square_bracket", "jump('step', True)", "step →", id="scrubber.next_step"),
        Binding("n", "jump('interrupt', True)", "next interrupt", id="scrubber.next_interrupt"),
        Binding("N", "jump('interrupt', False)", "prev interrupt", show=False, id="scrubber.prev_interrupt"),
        Binding("x", "jump('failure', True)", "next failure", show=False, id="scrubber.next_failure"),
        Binding("X", "jump('failure', False)", "prev failure", show=False, id="scrubber.prev_failure"),
        Binding("m", "jump('note', True)", "next note", show=False, id="scrubber.next_note"),
        Binding("M", "jump('note', False)", "prev note", show=False, id="scrubber.prev_note"),
        Binding("w", "only('note')", "notes only", show=False, id="scrubber.notes"),
        Binding("e", "only('failure')", "errors only", show=False, id="scrubber.errors"),
        Binding("g", "edge(0)", "first", show=False, id="scrubber.first"),
        Binding("G", "edge(-1)", "last", show=False, id="scrubber.last"),
        Binding("colon", "goto", "go to seq", show=False, id="scrubber.goto"),
        Binding("slash", "search", "search", show=False, id="scrubber.search"),
        Binding("t", "filter", "filter types", show=False, id="scrubber.filter"),
        Binding("v", "verify", "verify", show=False, id="scrubber.verify"),
        Binding("F", "fork", "fork here", id="scrubber.fork"),
        Binding("o", "open_artifact", "open artifact in $PAGER", show=False, id="scrubber.artifact"),
        Binding("q,escape", "back", "back", id="scrubber.back"),
    ]
    DEFAULT_CSS = """
    ScrubberScreen #bar {
        height: 1; width: 1fr; background: $panel; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    ScrubberScreen #ask { display: none; }
    ScrubberScreen #ask.shown { display: block; }
    ScrubberScreen #main { height: 1fr; }
    ScrubberScreen Timeline { width: 1fr; min-width: 40; }
    ScrubberScreen #detail { width: 1fr; border-left: solid $secondary; }
    ScrubberScreen #doc { height: 1fr; scrollbar-size-vertical: 1; }
    ScrubberScreen #hash { width: 1fr; height: 1; padding: 0 1; }
    ScrubberScreen #hash.bad { color: $error; }
    ScrubberScreen #hash.good { color: $success; }
    ScrubberScreen.narrow #main { layout: vertical; }
    ScrubberScreen.narrow #detail { border-left: none; border-top: solid $secondary; height: 1fr; }
    ScrubberScreen.narrow Timeline { height: 1fr; }
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.filter_index = 0
        self.asking: str | None = None
        self.graph = ""
        self._parts: list | None = None
        self._detail_seq: int | None = None
        self._scanned = 0  # a filtered view has looked at the run's events up to this seq
        self._home = 1  # the seq a filter that shows nothing was opened on

    def compose(self) -> ComposeResult:
        yield Label("", id="bar")
        yield Input(id="ask")
        with Horizontal(id="main"):
            yield Timeline(self.app.store, self.run_id, id="timeline")
            with Vertical(id="detail"):
                yield Label("", id="hash")
                # One Line-API widget for the whole detail: moving the cursor rewrites its lines
                # and never re-lays out the screen (three Statics cost ~70 ms a move, a Log ~2
                # layouts a move: see DocView).
                yield DocView(id="doc")
        yield Footer()

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    def _gone(self) -> bool:
        """True once this screen has been closed: a worker finishing late must not touch it."""
        # `display` is False once Textual is closing or pruning the screen; its parts then go one
        # by one (seen in the console benchmark: '#hash' gone while the timeline was still there).
        # Querying the four parts on every call cost 7% of a cursor move (profiled); once found
        # they are kept, and each is asked whether it is still in the DOM.
        if not self.is_attached or not self.display:
            return True
        if self._parts is None:
            found = [self.query(part) for part in (Timeline, "#hash", "#doc", "#bar")]
            if not all(found):
                return True
            self._parts = [q.first() for q in found]
        return not all(part.is_attached for part in self._parts)

    def on_mount(self) -> None:
        self.timeline.focus()
        self.set_class(self.size.width < 110, "narrow")
        self.open()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "narrow")

    @work(group="scrub-open")
    async def open(self) -> None:
        if self._gone():
            return
        info = await self.app.store.run(self.run_id)
        self.graph = info.graph
        self.timeline.set_count(info.last_seq)
        self.timeline.cursor = max(0, info.last_seq - 1)
        self.update_bar()

    def update_bar(self, note: str = "") -> None:
        if self._gone():
            return
        t = self.timeline
        seq = t.seq_at(t.cursor) if t.count else 0
        if t.types is None:
            where = f"seq {seq} of {t.count} shown · all events"
        elif not t.count:
            where = f"no {self.filter_name()} in this run"
        else:  # the position is within the filtered events, the seq is the run's
            where = f"seq {seq} · {t.cursor + 1} of {t.count} shown · {self.filter_name()} only"
        text = f"run {self.run_id} · {self.graph} · {where}"
        # one fixed row: no layout (a layout repaints the whole screen on every cursor move)
        self.query_one("#bar", Label).update(f"{text}  {note}".rstrip(), layout=False)

    def log_changed(self, batch) -> None:
        if self._gone():
            return  # not composed yet, or closing
        if self.run_id in batch.runs:
            self.follow_growth()

    # the detail at the cursor -----------------------------------------------------------------

    @on(Timeline.Moved)
    def moved(self, event: Timeline.Moved) -> None:
        self.update_bar()
        # The list says Moved again once the cursor's page has loaded; the detail of a seq never
        # changes, so one already shown (or on its way) is not folded and drawn a second time.
        if event.index >= self.timeline.count:
            return
        seq = self.timeline.seq_at(event.index)
        if seq != self._detail_seq:
            self._detail_seq = seq
            self.show_detail(event.index)

    @work(exclusive=True, group="scrub-detail")
    async def show_detail(self, index: int) -> None:
        if self._gone():
            return
        await asyncio.sleep(0.004)  # a held key moves the cursor many times; show where it stops
        if self._gone():
            return
        t = self.timeline
        store = self.app.store
        # After a jump the cursor's page is still loading (the list asked for it when the cursor
        # moved); the state does not wait for it, and the event is read alone if it is not there.
        if index >= t.count:
            return
        seq = t.seq_at(index)
        before, now = await store.state_pair(self.run_id, seq)
        record = t.item(index)
        if record is None or record.seq != seq:
            found = await store.events(self.run_id, seq, limit=1)
            if not found:
                self._detail_seq = None  # not readable yet: the next Moved for it tries again
                return
            record = found[0]
        if self._gone():
            return
        event = record.event
        changes = diff_lines(before.state, now.state) or ["(no change to the state)"]
        ref = ref_in(event)
        lines = [
            *(ref_lines(ref, "o") if ref is not None else ()),
            "── event ──", *_pretty(_event_first(record)).splitlines(), "",
            "── changed by it ──", *changes, "",
            f"── state as of seq {record.seq} ──", *_pretty(to_builtins(now.state)).splitlines(),
        ]
        self.query_one("#doc", DocView).show(_capped(lines))
        mark = self.query_one("#hash", Label)  # one fixed row: updated without a layout
        problems = [f"seq {s}: {m}" for s, m in now.problems]
        if isinstance(event, (Corrupt, Unknown)):
            mark.update(f"✗ seq {record.seq} is {'corrupt' if isinstance(event, Corrupt) else 'of an unknown type'}", layout=False)
            mark.set_classes("bad")
        elif isinstance(event, StepCompleted) and event.state_hash:
            ok = canonical_hash(now.state) == event.state_hash
            mark.update(f"{'✓ state hash verifies' if ok else '✗ state hash does not match the replay'} "
                        f"({event.state_hash[:12]})", layout=False)
            mark.set_classes("good" if ok else "bad")
        elif problems:
            mark.update("✗ " + "; ".join(problems[:2]), layout=False)
            mark.set_classes("bad")
        else:
            mark.update(f"seq {record.seq} · state from snapshot @{now.snapshot_seq} + fold", layout=False)
            mark.set_classes("")
        # the pages a screen away, loaded after this detail (they share its database reader)
        t.prefetch(index, max(1, t.size.height))

    # moving -----------------------------------------------------------------------------------

    def action_step_event(self, delta: int) -> None:
        self.timeline.action_move(delta)

    def action_edge(self, where: int) -> None:
        self.timeline.action_jump(where)

    @work(exclusive=True, group="scrub-jump")
    async def action_jump(self, what: str, forward: bool) -> None:
        types = {"step": STEP, "interrupt": INTERRUPTS, "failure": FAILURES, "note": ONLY["note"]}[what]
        t = self.timeline
        seq = t.seq_at(t.cursor) if t.count else 0
        found = await self.app.store.find(self.run_id, seq, types, forward=forward)
        if found is None:
            self.notify(f"no {what} {'after' if forward else 'before'} seq {seq}")
            return
        self._go(found)

    def _go(self, seq: int) -> None:
        t = self.timeline
        if t.types is not None and t.seqs is not None and seq not in t.seqs:
            # every event again, the cursor on `seq` once they are counted (moving it before
            # that worker ends would be undone by it)
            self.clear_filter(seq)
            return
        t.cursor = t.index_of(seq)

    def action_goto(self) -> None:
        self._ask("goto", "go to seq (enter)")

    def action_search(self) -> None:
        self._ask("search", "find text after the cursor (enter); searches every event's JSON")

    def _ask(self, what: str, placeholder: str) -> None:
        box = self.query_one("#ask", Input)
        self.asking = what
        box.placeholder = placeholder
        box.value = ""
        box.add_class("shown")
        box.focus()

    @on(Input.Submitted, "#ask")
    def answered(self, event: Input.Submitted) -> None:
        box = self.query_one("#ask", Input)
        box.remove_class("shown")
        self.timeline.focus()
        text = event.value.strip()
        if not text:
            return
        if self.asking == "goto":
            if not text.isdigit() or not 1 <= int(text) <= self.timeline_total():
                self.notify(f"no seq {text} in this run", severity="warning")
                return
            self._go(int(text))
        else:
            self.search(text)

    @work(exclusive=True, group="scrub-search")
    async def search(self, text: str) -> None:
        t = self.timeline
        start = t.seq_at(t.cursor) + 1
        needle = text.lower()
        scanned = 0
        async for record in self.app.store.iter_events(self.run_id, start, page=2000):
            scanned += 1
            if needle in _json.encode(record_json(record)).decode().lower():
                self._go(record.seq)
                self.update_bar(f"found {text!r} at seq {record.seq}")
                return
            if scanned % 20000 == 0:
                self.update_bar(f"searching… {scanned:,} events")
        self.notify(f"{text!r} is not after seq {start - 1}")
        self.update_bar()

    @work(exclusive=True, group="scrub-verify")
    async def action_verify(self) -> None:
        self.update_bar("verifying…")
        result = await verify_run(self.app.store, self.run_id)
        if result.problems:
            first = result.problems[0]
            self.notify(f"{len(result.problems)} problem(s); first at seq {first.seq}: {first.message}",
                        severity="error", timeout=10)
            self._go(first.seq)
        else:
            self.notify(f"verified: {result.next_seq - 1} events, {result.steps_checked} state hashes")
        self.update_bar()

    @work(exclusive=True, group="scrub-fork")
    async def action_fork(self) -> None:
        t = self.timeline
        if not t.count or self.app.readonly:
            return
        seq = t.seq_at(t.cursor)
        try:
            new_id = await self.app.runtime.fork(self.run_id, seq)
            await self.app.runtime.adopt(new_id)
        except VigilError as exc:
            self.notify(f"cannot fork: {exc}", severity="error")
            return
        self.notify(f"forked at seq {seq} as {new_id}")
        self.app.pop_screen()
        self.app.open_panes([new_id])

    @work(exclusive=True, group="scrub-artifact")
    async def action_open_artifact(self) -> None:
        t = self.timeline
        record = t.item(t.cursor) if t.count else None
        ref = ref_in(record.event) if record is not None else None
        if ref is None:
            self.notify("this event references no artifact")
            return
        await page_artifact(self.app, ref)

    def action_back(self) -> None:
        self.app.pop_screen()
