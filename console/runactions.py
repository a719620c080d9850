"""What the console does to one run, chosen from the list, a pane, the scrubber or the palette:
fork, export, cancel (asked first), pause/unpause, and a screenshot. Each goes through the same
path as the CLI command of that name. Mixed into VigilApp."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import msgspec
from textual import work

from kernel.log.sqlite import schema
from kernel.errors import VigilError
from kernel.owner import current_actor
from kernel.projection import TERMINAL
from kernel.engine.steer import steer

__all__ = ["RunActions"]


class RunActions:
    """Needs from the app: `store`, `runtime`, `readonly`, `screen_stack`, `notify`,
    `push_screen_wait`, `open_panes`, `save_screenshot`."""

    def _selected_run(self) -> str | None:
        """The run you are looking at: the focused pane's, the screen's, or the runs list's cursor."""
        from .screens.runs import RunsScreen
        from .widgets.runlist import RunList

        for screen in reversed(self.screen_stack):
            node = screen.focused
            while node is not None and node is not screen:
                run_id = getattr(node, "run_id", None)
                if isinstance(run_id, str):
                    return run_id
                node = node.parent
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

    def action_cancel_run(self) -> None:
        self._on_selected(self.ask_cancel)

    def _on_selected(self, act: Callable[[str], Any]) -> None:
        run_id = self._selected_run()
        if run_id is None:
            self.notify("no run selected")
        else:
            act(run_id)

    @work(group="cancel")
    async def ask_cancel(self, run_id: str) -> None:
        """Ask, then cancel through the same path as `vigil cancel` (a signal to a live owner)."""
        from .screens.confirm import ConfirmScreen

        info = await self.store.run(run_id)
        if info.status in TERMINAL:
            self.notify(f"run {run_id} has already ended ({info.status}); nothing to cancel")
            return
        if self.readonly:
            self.notify("the log is read-only here: cannot cancel", severity="error")
            return
        if not await self.push_screen_wait(ConfirmScreen(f"Cancel run {run_id} ({info.graph})?",
                                                         f"{info.status}, {info.last_seq} events; this cannot be undone")):
            return
        body = {"reason": "cancelled from the console", "actor": msgspec.to_builtins(current_actor())}
        try:
            how = await steer(self.runtime, run_id, "cancel", body)
        except VigilError as exc:
            self.notify(f"cannot cancel {run_id}: {exc}", severity="error")
            return
        self.notify(f"cancelled {run_id}: {how}")

    def action_pause_run(self) -> None:
        self._on_selected(self.toggle_pause)

    @work(group="pause")
    async def toggle_pause(self, run_id: str) -> None:
        """Pause a run at its next step boundary, or unpause it (`vigil pause/unpause`'s path).
        A run nobody drives is paused or unpaused and left for a worker, never adopted here."""
        info = await self.store.run(run_id)
        if info.status in TERMINAL:
            self.notify(f"run {run_id} has ended ({info.status})")
            return
        if self.readonly:
            self.notify("the log is read-only here: cannot pause", severity="error")
            return
        kind = "unpause" if info.status == "paused" else "pause"
        body = {"reason": "paused from the console", "actor": msgspec.to_builtins(current_actor())}
        try:
            how = await steer(self.runtime, run_id, kind, body, drive=False)
        except VigilError as exc:
            self.notify(f"cannot {kind} {run_id}: {exc}", severity="error")
            return
        self.notify(f"{kind}d {run_id}: {how}")

    def screenshot(self) -> None:
        # Textual saves to ~/Downloads, which many servers do not have; vigil saves where
        # `export` does, or in its data directory if the current one is not writable.
        for directory in (Path.cwd(), schema.default_path().parent / "screenshots"):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                path = self.save_screenshot(path=str(directory))
            except OSError:
                continue
            self.notify(f"saved {path}", title="screenshot")
            return
        self.notify("cannot save a screenshot: neither the current nor the data directory is writable",
                    severity="error")
