"""The console: a Textual app hosting the runtime in-process. Everything it shows is read from
the event log, so a console in another process (or over SSH) shows the same."""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import work
from textual.actions import SkipAction
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Input, TextArea

from kernel.errors import StoreError, VigilError
from kernel.events import InterruptRaised
from kernel.owner import owner_alive
from kernel.log.folding import InterruptInfo
from kernel.registry import Registry
from kernel.engine.runtime import Runtime
from kernel.store import Store
from themes import DEFAULT, load_themes

from . import config
from .gctune import tune_gc
from .feed import Batch, follow
from .livetokens import LiveTokens
from .runactions import RunActions

__all__ = ["VigilApp"]


class VigilApp(RunActions, App[None]):
    TITLE = "vigil"
    CSS_PATH = "vigil.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        # priority, so that `?` opens help over modal screens (the prompt) too; it steps aside
        # for text fields (see action_toggle_help)
        Binding("question_mark", "toggle_help", "help", id="app.help", priority=True),
        # not in the footer (80 columns are short): the runs bar and every notice say "press i"
        Binding("i", "next_interrupt", "next interrupt", show=False, id="app.interrupt"),
        Binding("C", "cancel_run", "cancel run (asks first)", show=False, id="app.cancel"),
        Binding("P", "pause_run", "pause / unpause run", show=False, id="app.pause"),
        Binding("ctrl+p", "command_palette", "commands", show=False, id="app.palette"),
    ]

    def __init__(
        self,
        db: Path | str,
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
        self._shown: set[tuple[str, str]] = set()
        self._fresh: list[tuple[str, str]] = []  # (run, title) of questions not yet announced
        self._raised: list[tuple[str, InterruptRaised]] = []  # delivered, not yet looked at
        self._announcing: Any = None
        self.keymap_overrides: dict[str, str] = {}  # binding id -> keys, from keys.toml
        self.config_problems: list[str] = []
        self._save_theme = True

    # start-up and shut-down ---------------------------------------------------------------

    async def on_load(self) -> None:
        # SQLite hands the GIL back on every row it steps; at the default 5 ms switch interval a
        # reader thread fetching a page waits behind every frame the UI renders (measured: a
        # 200-row page took 420 ms while a screen composed). 0.5 ms keeps pages in tens of ms.
        sys.setswitchinterval(0.0005)
        tune_gc()
        for fields in load_themes():
            self.register_theme(Theme(**fields))
        self._load_settings()

    def _load_settings(self) -> None:
        """Theme and keys from the options and the config files. Anything wrong becomes a notice
        (shown once the screen is up) and the default; the console always starts."""
        from .screens.help import known_bindings

        saved, problems = config.load_theme()
        chosen = None
        for name, source in ((self.requested_theme, "--theme"), (saved, str(config.config_dir() / "config.toml"))):
            if name is None:
                continue
            if name in self.available_themes:
                chosen = name
                break
            ours = ", ".join(t for t in sorted(self.available_themes) if t.startswith("vigil"))
            problems.append(f"there is no theme {name!r} (from {source}); the themes are {ours}")
        # a fallback is not a choice: it must not overwrite the user's file
        self._save_theme = chosen is not None
        self.theme = chosen or DEFAULT
        self._save_theme = True

        keymap, more = config.load_keymap()
        problems += more
        known = known_bindings()
        for binding_id in [b for b in keymap if b not in known]:
            problems.append(f"{config.config_dir() / 'keys.toml'}: no key has the binding id {binding_id!r}; "
                            "ignored (? lists the ids)")
            del keymap[binding_id]
        self.keymap_overrides = keymap
        if keymap:
            self.set_keymap(keymap)
        self.config_problems = problems

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
        self.live_tokens = LiveTokens(self)  # tokens of runs other processes drive, and ours for them
        await self.live_tokens.start()
        self.follow_log(await self.store.head())
        await self.refresh_pending()
        await self.push_screen(RunsScreen())
        gc.freeze()  # what start-up made lives as long as the app: no collection walks it again
        for problem in self.config_problems:
            self.notify(problem, title="settings", severity="warning", timeout=12)
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
        return [info.run_id async for info in self.runtime.orphans()]

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
            # Steps under way finish (briefly) rather than leave their effects in doubt.
            await self.runtime.drain(5.0, release=getattr(self, "_release_on_exit", True))
        if hasattr(self, "live_tokens"):
            await self.live_tokens.close()
        if hasattr(self, "store"):
            await self.store.close()
        gc.unfreeze()  # an app run inside a longer process (tests, embedding) leaves nothing pinned

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
            # Queued here, not in the worker: a newer batch cancels an exclusive worker midway.
            self._raised.extend(
                (r.run_id, r.event) for r in batch.records if isinstance(r.event, InterruptRaised)
            )
            self.refresh_pending_later()
        for screen in self.screen_stack:
            handler = getattr(screen, "log_changed", None)
            if handler is not None:
                handler(batch)

    @work(exclusive=True, group="pending")
    async def refresh_pending_later(self) -> None:
        try:
            await self.refresh_pending()
        except StoreError:
            return  # unreadable a moment (the feed says "reconnecting"); the next batch retries
        ours = {p.run_id for p in self.pending}
        raised, self._raised = self._raised, []
        for run_id, event in raised:
            if (run_id, event.interrupt_id) not in self._shown:  # ids repeat across runs
                self._shown.add((run_id, event.interrupt_id))
                if run_id in ours:
                    self._fresh.append((run_id, event.title))
        if self._fresh and self._announcing is None:
            # One toast for what arrives within a second: at 80x24 a stack of them hides the list.
            self._announcing = self.set_timer(1.0, self._announce)
        from .screens.prompt import PromptScreen

        top = self.screen_stack[-1] if self.screen_stack else None  # none while shutting down
        if isinstance(top, PromptScreen):
            if not any(p.interrupt_id == top.raised.interrupt_id and p.run_id == top.run_id for p in self.pending):
                top.resolved_elsewhere()

    def _announce(self) -> None:
        self._announcing = None
        fresh, self._fresh = self._fresh, []
        if not fresh or not self.screen_stack or self._prompt_open():  # (no stack: shutting down)
            return
        if len(fresh) == 1:
            run_id, title = fresh[0]
            self.notify(f"{title} · run {run_id} · press i", title="waiting for you", timeout=6)
        else:
            titles = "; ".join(t for _, t in fresh[:3]) + ("; ..." if len(fresh) > 3 else "")
            self.notify(f"{len(fresh)} new: {titles} · press i", title="waiting for you", timeout=6)

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
        return owner_alive(info.owner, info.lease_until_ns, info.seen_ns) or info.graph in self.registry

    def _prompt_open(self) -> bool:
        from .screens.prompt import PromptScreen

        return bool(self.screen_stack) and isinstance(self.screen_stack[-1], PromptScreen)

    # navigation ------------------------------------------------------------------------------

    def action_toggle_help(self) -> None:
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        if isinstance(self.focused, (Input, TextArea)):
            raise SkipAction()  # a `?` typed into a field is text
        self.show_help(self.screen)

    def show_help(self, screen: Screen) -> None:
        from .screens.help import HelpScreen

        self.push_screen(HelpScreen(screen))

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
        if self._save_theme:
            config.save_theme(theme)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            # ours instead: vigil's help, and a screenshot that does not need ~/Downloads
            if command.title not in ("Keys", "Screenshot"):
                yield command
        yield SystemCommand("Keys", "every vigil key for this screen, with its binding id", lambda: self.show_help(screen))
        yield SystemCommand("Screenshot", "save an SVG of this screen in the current directory",
                            lambda: self.set_timer(0.1, self.screenshot))
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
            yield SystemCommand("Cancel run", f"cancel {run_id} (asks first)", lambda: self.ask_cancel(run_id))
            yield SystemCommand("Pause or unpause run", f"stop {run_id} at its next step boundary, or let it go on",
                                lambda: self.toggle_pause(run_id))

    def _to_runs(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()
