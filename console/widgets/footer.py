"""Textual's Footer, recomposed only when the keys it shows change.

Textual's Footer recomposes (a new FooterKey per binding, mounted, styled, laid out) every time
the screen's bindings may have changed, and that is every focus change: tab in the live grid
paid a full recompose and a layout for the same keys (bench/NOTES.md, "2x2 grid"). This one
compares what it would show with what it shows and recomposes only when they differ, so every
key is still shown as Textual would show it, on every screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.widgets import Footer as TextualFooter

if TYPE_CHECKING:
    from textual.screen import Screen

__all__ = ["Footer"]


class Footer(TextualFooter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple | None = None  # what the last compose showed

    def _keys(self) -> tuple | None:
        """Everything compose reads from the bindings, in its order; None before they are ready."""
        if not self._bindings_ready:
            return None
        app = self.app
        return (
            tuple(
                (key, binding.key, app.get_key_display(binding), binding.description, binding.action,
                 binding.group, enabled, tooltip, binding.tooltip)
                for key, (_, binding, enabled, tooltip) in self.screen.active_bindings.items()
                if binding.show or key == app.COMMAND_PALETTE_BINDING  # the palette key is shown apart
            ),
            self.show_command_palette, app.ENABLE_COMMAND_PALETTE,
        )

    def compose(self) -> ComposeResult:
        self._shown = self._keys()
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        if self.is_attached and self._keys() != self._shown:
            await self.recompose()
