"""The scrubber's filtered views (mixed into ScrubberScreen): `t` cycles through event types,
`w` shows only notes, `e` only failures; a filtered view of a live run takes in new matching
events. Split from scrubber.py to keep that module to one job: walking the events."""

from __future__ import annotations

from textual import work
from textual.widgets import Label

from ..widgets.docview import DocView

__all__ = ["FilteredViews", "FILTERS", "ONLY", "NAMES", "FAILURES"]

FAILURES = ("StepFailed", "ActionFailed", "RunFailed", "RunDiverged")
ONLY = {"note": ("Note",), "failure": FAILURES}  # what `w` and `e` narrow the timeline to
FILTERS: list[tuple[str, ...] | None] = [None, ("StepStarted", "StepCompleted", "StepFailed"),
                                         ("ActionRequested", "ActionSucceeded", "ActionFailed"),
                                         ("InterruptRaised", "InterruptResolved", "ToolApprovedForRun"),
                                         ONLY["note"], FAILURES]
# what a filtered view is called: "notes only", "no notes in this run"
NAMES = {ONLY["note"]: "notes", FILTERS[1]: "steps", FILTERS[2]: "actions", FILTERS[3]: "interrupts",
         FAILURES: "errors"}


class FilteredViews:
    """Needs from the screen: `timeline`, `run_id`, `app`, `_gone()`, `update_bar()`, and the
    attributes `filter_index`, `_scanned` (the last seq a filtered view has looked at), `_home`
    (where an empty filtered view was opened) and `_detail_seq`."""

    @work(exclusive=True, group="scrub-grow")
    async def follow_growth(self) -> None:
        if self._gone():
            return
        t = self.timeline
        at_end = t.cursor >= t.count - 1
        info = await self.app.store.run(self.run_id)
        if self._gone():
            return
        if t.types is not None:
            await self._grow_filtered(info.last_seq, at_end)
        elif info.last_seq != t.count:
            t.set_count(info.last_seq)
            t.invalidate()
            if at_end:
                t.cursor = info.last_seq - 1
        self.update_bar()

    async def _grow_filtered(self, last_seq: int, at_end: bool) -> None:
        """Add the new events of the filtered types (read from the seq after the last looked at,
        not the whole run again: a long live run grows on every flush)."""
        t, types = self.timeline, self.timeline.types
        if last_seq <= self._scanned:
            return
        known = t.seqs[-1] if t.seqs else 0
        new = [r.seq async for r in self.app.store.iter_events(self.run_id, self._scanned + 1, last_seq, types=types)
               if r.seq > known]
        if self._gone() or t.types is not types:
            return  # the filter changed meanwhile
        self._scanned = last_seq
        if not new:
            return
        was_empty = not t.count
        t.seqs.extend(new)
        t.set_count(len(t.seqs))
        t.invalidate()
        if at_end or was_empty:
            t.cursor = t.count - 1

    def show_nothing(self) -> None:
        """A filter that matches no event: say so, not the detail of an event it left out."""
        self._detail_seq = None
        self.workers.cancel_group(self, "scrub-detail")  # one on its way would draw the old event
        text = f"no {self.filter_name()} in this run"
        self.query_one("#doc", DocView).show([text])
        mark = self.query_one("#hash", Label)
        mark.update("", layout=False)
        mark.set_classes("")

    def filter_name(self) -> str:
        types = self.timeline.types
        return NAMES.get(types) or ", ".join(types or ())

    def timeline_total(self) -> int:
        """The run's last seq (a filtered view's last shown event is not the run's last)."""
        t = self.timeline
        return t.count if t.types is None else self._scanned

    @work(exclusive=True, group="scrub-filter")
    async def action_filter(self) -> None:
        current = self._here()
        self.filter_index = (self.filter_index + 1) % len(FILTERS)
        types = FILTERS[self.filter_index]
        if types is None:
            self.clear_filter()
        else:
            await self._narrow(types, current)
        self.update_bar()

    @work(exclusive=True, group="scrub-filter")
    async def action_only(self, what: str) -> None:
        """Only notes (or only failures); the same key again shows every event."""
        t, types = self.timeline, ONLY[what]
        if t.types == types:
            self.clear_filter()
        else:  # `t` then goes on from here in its cycle
            self.filter_index = FILTERS.index(types) if types in FILTERS else 0
            await self._narrow(types, self._here())
        self.update_bar()

    async def _narrow(self, types: tuple[str, ...], current: int) -> None:
        t = self.timeline
        last_seq = (await self.app.store.run(self.run_id)).last_seq  # before the seqs: none missed
        t.seqs = await self.app.store.seqs(self.run_id, types)
        t.types = types
        self._scanned = max(last_seq, t.seqs[-1] if t.seqs else 0)
        t._pages.clear()
        t.set_count(len(t.seqs))
        if t.count:
            t.cursor = t.index_of(current)
        else:
            self._home = current
            self.show_nothing()

    def _here(self) -> int:
        """The seq at the cursor; in a filtered view with nothing in it, where it was before."""
        t = self.timeline
        return t.seq_at(t.cursor) if t.count else self._home

    def clear_filter(self, to_seq: int | None = None) -> None:
        t = self.timeline
        current = self._here()
        self.filter_index = 0
        t.seqs = t.types = None
        t._pages.clear()
        self.open_count(to_seq or current)

    @work(group="scrub-count")
    async def open_count(self, seq: int) -> None:
        if self._gone():
            return
        info = await self.app.store.run(self.run_id)
        self.timeline.set_count(info.last_seq)
        self.timeline.cursor = seq - 1
        self.update_bar()
