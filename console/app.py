"""The console: a Textual app hosting the runtime in-process. Everything it shows is read from
the event log, so a console in another process (or over SSH) shows the same."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.theme import Theme

from kernel.errors import VigilError
from kernel.events import InterruptRaised
from kernel.owner import owner_alive
from kernel.reads import InterruptInfo
from kernel.registry import Registry
from kernel.runtime import Runtime
from kernel.store import Store
from themes import DEFAULT, load_themes

from . import config
from .feed import Batch, follow

__all__ = ["VigilApp"]


class VigilApp(App[None]):
    TITLE = "vigil"
    CSS_PATH = "vigil.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("question_mark", "toggle_help", "keys", id="app.help"),
        Binding("i", "next_interrupt", "next interrupt", id="app.interrupt"),
        Binding("ctrl+p", "command_palette", "commands", show=False, id="app.palette"),
    ]

    def __init__(
        self,
        db: Path,
        registry: Registry,
        *,
        theme: str | None = None,
        demo: bool = False,
        start: tuple[str, Any] | None = None,
        now: Callable[[], int] = time.time_ns,
        adopt: bool | None = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.registry = registry
        self.requested_theme = theme
        self.demo = demo
        self.start_run = start
        self.now = now
        self.adopt = adopt
        self.pending: list[InterruptInfo] = []  # what this console can answer, in-doubt first
        self.pending_elsewhere: list[InterruptInfo] = []  # runs only another process can drive
        self.orphaned: list[str] = []
        self.readonly = False
        self.feed_trouble: str | None = None  # why the log feed is reconnecting, if it is
        self.store: Store
        self.runtime: Runtime
        self._shown: set[str] = set()

    # start-up and shut-down ---------------------------------------------------------------

    async def on_load(self) -> None:
        # SQLite hands the GIL back on every row it steps; at the default 5 ms switch interval a
        # reader thread fetching a page waits behind every frame the UI renders (measured: a
        # 200-row page took 420 ms while a screen composed). 0.5 ms keeps pages in tens of ms.
        sys.setswitchinterval(0.0005)
        for fields in load_themes():
            self.register_theme(Theme(**fields))
        self.theme = self.requested_theme or config.load_theme() or DEFAULT
        keymap = config.load_keymap()
        if keymap:
            self.set_keymap(keymap)

    async def on_mount(self) -> None:
        from .screens.runs import RunsScreen

        try:
            self.store = await Store.open(self.db)
        except VigilError:
            self.store = await Store.open(self.db, readonly=True)  # still lets you look and scrub
            self.readonly = True
            self.notify("the log is read-only here: you can look and scrub, not act", severity="warning", timeout=8)
        self.runtime = Runtime(self.store, self.registry)
        if not self.readonly:
            await self.runtime.__aenter__()
        self.runtime.listen(self._from_runtime)
        self.follow_log(await self.store.head())
        await self.refresh_pending()
        await self.push_screen(RunsScreen())
        if not self.readonly:
            self.startup()

    @work(group="startup")
    async def startup(self) -> None:
        # Never silently: a console that takes runs over also dies with them. Say so, offer it.
        self.orphaned = await self.find_orphans()
        if self.adopt:  # asked for (tests, embedding); None offers, False stays quiet
            self.adopt_orphans()
        elif self.adopt is None and self.orphaned:
            self.notify(
                f"{len(self.orphaned)} run(s) have no live owner; a `vigil worker` adopts them, "
                "or ctrl+p 'Adopt orphaned runs' drives them here",
                title="orphaned runs", severity="warning", timeout=10,
            )
        if self.demo:
            from kernel.demos import samples

            for graph, value in samples().items():
                await self.runtime.start(graph, value, labels={"demo": "yes"})
            self.notify("demo runs started: press i when something waits for you", timeout=6)
        if self.start_run is not None:
            run_id = await self.runtime.start(*self.start_run)
            self.open_panes([run_id])

    async def find_orphans(self) -> list[str]:
        """Runs nobody drives that this console could (their graph is registered here)."""
        found: list[str] = []
        for status in ("running", "waiting"):
            offset = 0
            while batch := await self.store.runs(status=status, limit=500, offset=offset):
                offset += len(batch)
                found += [
                    r.run_id for r in batch
                    if r.graph in self.registry and r.run_id not in self.runtime.drivers
                    and not owner_alive(r.owner, r.lease_until_ns)
                ]
        return found

    @work(group="adopt")
    async def adopt_orphans(self) -> None:
        adopted = await self.runtime.resume()
        self.orphaned = await self.find_orphans()
        self.notify(f"adopted {len(adopted)} run(s) whose owner had gone" if adopted else "no orphaned runs to adopt")

    async def action_quit(self) -> None:
        """Quitting a console that drives runs asks what becomes of them."""
        from .screens.quitting import QuitScreen

        if self.readonly or not hasattr(self, "runtime"):
            self.exit()
            return
        live = [d for d in self.runtime.drivers.values() if d.view.terminal is None]
        if not live:
            self.exit()
            return
        waiting = sum(1 for d in live if d.view.pending_interrupts() and not (d.task and not d.task.done()))
        self.push_screen(QuitScreen(len(live) - waiting, waiting), self._quit_as)

    @work(group="quit")
    async def _quit_as(self, choice: str | None) -> None:
        if choice is None:
            return
        if choice == "cancel":
            for run_id in list(self.runtime.drivers):
                try:
                    await self.runtime.cancel(run_id, "cancelled when the console that drove it quit")
                except VigilError as exc:
                    self.notify(f"{run_id}: {exc}", severity="error")
        self._release_on_exit = choice != "leave"
        self.exit()

    async def on_unmount(self) -> None:
        if hasattr(self, "runtime") and not self.readonly:
            await self.runtime.close(release=getattr(self, "_release_on_exit", True))
        if hasattr(self, "store"):
            await self.store.close()

    # the log, live ---------------------------------------------------------------------------

    @work(group="feed", exit_on_error=False)
    async def follow_log(self, after: int) -> None:
        await follow(self.store, after, self._delivered, self._feed_trouble)

    def _feed_trouble(self, error: str | None) -> None:
        if error is not None and self.feed_trouble is None:
            self.notify(f"the log feed hit a database error ({error}); reconnecting", severity="warning")
        self.feed_trouble = error
        for screen in self.screen_stack:
            if hasattr(screen, "update_bar"):
                screen.update_bar()

    def _delivered(self, batch: Batch) -> None:
        if batch.interrupts:
            self.refresh_pending_later(batch)
        for screen in self.screen_stack:
            handler = getattr(screen, "log_changed", None)
            if handler is not None:
                handler(batch)

    @work(exclusive=True, group="pending")
    async def refresh_pending_later(self, batch: Batch) -> None:
        await self.refresh_pending()
        for record in batch.records:
            event = record.event
            if isinstance(event, InterruptRaised) and event.interrupt_id not in self._shown:
                self._shown.add(event.interrupt_id)
                if not self._prompt_open():
                    self.notify(f"{event.title} · run {record.run_id} · press i", title="waiting for you", timeout=6)
        top = self.screen
        from .screens.prompt import PromptScreen

        if isinstance(top, PromptScreen):
            if not any(p.interrupt_id == top.raised.interrupt_id and p.run_id == top.run_id for p in self.pending):
                top.resolved_elsewhere()

    async def refresh_pending(self) -> None:
        every = await self.store.interrupts()
        steerable: dict[str, bool] = {}
        for p in every:
            if p.run_id not in steerable:
                steerable[p.run_id] = not self.readonly and await self._can_steer(p.run_id)
        # A crash question first: a human must say whether money moved before anything else.
        order = sorted(every, key=lambda p: (p.kind != "in_doubt", p.raised_ns))
        self.pending = [p for p in order if steerable[p.run_id]]
        self.pending_elsewhere = [p for p in order if not steerable[p.run_id]]
        for screen in self.screen_stack:
            if hasattr(screen, "update_bar"):
                screen.update_bar()

    def _from_runtime(self, what: str, run_id: str, data: Any) -> None:
        if what == "token":
            for screen in self.screen_stack:
                handler = getattr(screen, "on_token", None)
                if handler is not None:
                    handler(run_id, *data)
        elif what in ("lost", "error"):
            self.notify(f"{run_id}: {data}", severity="error")

    async def _can_steer(self, run_id: str) -> bool:
        """A live owner applies our signal; with none, this process must have the graph."""
        if run_id in self.runtime.drivers:
            return True
        try:
            info = await self.store.run(run_id)
        except VigilError:
            return False
        return owner_alive(info.owner, info.lease_until_ns) or info.graph in self.registry

    def _prompt_open(self) -> bool:
        from .screens.prompt import PromptScreen

        return isinstance(self.screen, PromptScreen)

    # navigation ------------------------------------------------------------------------------

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    @work(exclusive=True, group="prompt-open")
    async def action_next_interrupt(self, after: str | None = None) -> None:
        from .screens.prompt import PromptScreen

        if self._prompt_open():
            return
        await self.refresh_pending()
        queue = self.pending
        if after is not None:
            keys = [f"{p.run_id}/{p.interrupt_id}" for p in queue]
            if after in keys and len(queue) > 1:
                i = keys.index(after)
                queue = queue[i + 1:] + queue[:i]
        if not queue:
            self.notify("nothing is waiting for you")
            return
        chosen = queue[0]
        record = (await self.store.events(chosen.run_id, chosen.seq, chosen.seq))[0]
        info = await self.store.run(chosen.run_id)
        key = f"{chosen.run_id}/{chosen.interrupt_id}"

        def closed(result: str | None) -> None:
            if result == "skip":
                self.action_next_interrupt(key)

        await self.push_screen(PromptScreen(chosen.run_id, info.graph, record.event, len(self.pending)), closed)

    def open_panes(self, run_ids: list[str]) -> None:
        from .screens.live import LiveScreen

        self.push_screen(LiveScreen(run_ids))

    def open_scrubber(self, run_id: str) -> None:
        from .screens.scrubber import ScrubberScreen

        self.push_screen(ScrubberScreen(run_id))

    def action_new_run(self) -> None:
        from .screens.newrun import NewRunScreen

        def chosen(result: tuple[str, Any, bool] | None) -> None:
            if result is not None:
                self.launch(*result)

        self.push_screen(NewRunScreen(self.registry), chosen)

    @work(group="launch")
    async def launch(self, graph: str, value: Any, queue: bool = False) -> None:
        try:
            if queue:  # a worker drives it; this console only watches
                run_id = await self.runtime.enqueue(graph, value)
                self.notify(f"run {run_id} queued for a worker")
            else:
                run_id = await self.runtime.start(graph, value)
        except VigilError as exc:
            self.notify(str(exc), severity="error")
            return
        self.open_panes([run_id])

    def watch_theme(self, theme: str) -> None:
        config.save_theme(theme)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Start a run", "start a new run of a registered graph", self.action_new_run)
        yield SystemCommand("Approve next", "open the next pending interrupt", self.action_next_interrupt)
        yield SystemCommand("Runs", "back to the list of runs", self._to_runs)
        if not self.readonly:
            yield SystemCommand("Adopt orphaned runs", "drive here the runs whose owner has gone",
                                self.adopt_orphans)
        run_id = self._selected_run()
        if run_id:
            yield SystemCommand("Open run", f"live pane for {run_id}", lambda: self.open_panes([run_id]))
            yield SystemCommand("Scrub run", f"walk the history of {run_id}", lambda: self.open_scrubber(run_id))
            yield SystemCommand("Fork run", f"fork {run_id} at its last event", lambda: self.fork_latest(run_id))
            yield SystemCommand("Export run", f"write {run_id} as JSON lines to the current directory",
                                lambda: self.export(run_id))

    def _selected_run(self) -> str | None:
        from .screens.runs import RunsScreen
        from .widgets.runlist import RunList

        for screen in reversed(self.screen_stack):
            if isinstance(screen, RunsScreen):
                run = screen.query_one(RunList).selected()
                return run.run_id if run else None
            run_id = getattr(screen, "run_id", None)
            if run_id:
                return run_id
        return None

    @work(group="fork")
    async def fork_latest(self, run_id: str) -> None:
        try:
            info = await self.store.run(run_id)
            new_id = await self.runtime.fork(run_id, info.last_seq)
            await self.runtime.adopt(new_id)
        except VigilError as exc:
            self.notify(f"cannot fork: {exc}", severity="error")
            return
        self.open_panes([new_id])

    @work(group="export")
    async def export(self, run_id: str) -> None:
        from kernel.exchange import export_lines

        target = Path.cwd() / f"vigil-{run_id}.jsonl"
        tmp = target.with_suffix(".jsonl.tmp")
        count = 0
        try:
            with tmp.open("wb") as f:
                async for line in export_lines(self.store, run_id):
                    f.write(line + b"\n")
                    count += 1
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self.notify(f"cannot export: {exc}", severity="error")
            return
        self.notify(f"exported {count} events to {target}")

    def _to_runs(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()
