"""A read-only document of plain lines on Textual's Line API, drawn like `textual.widgets.Log`,
for text that is replaced wholesale many times a second (the scrubber's detail pane).

Why not `Log`: its `clear()` + `write_lines()` set `virtual_size` twice, and every change of that
reactive is a screen layout, which repaints every widget on the screen (measured in the scrubber:
about 2 layouts and 750 repainted lines per cursor move). Here a new document repaints only the
visible rows whose text changed, keeps the rendered strips of lines it has seen (most of a state
is the same from one event to the next), and changes the scroll extent without a layout (the
scrollbars are always shown, `overflow: scroll`, so no layout can follow from it).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from math import ceil

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["DocView"]

_control = re.compile("[\u0000-\u0014]").sub  # what Log replaces with U+FFFD


class DocView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    DocView {
        background: $surface;
        color: $text;
        overflow: scroll;
        &:focus {
            background-tint: $foreground 5%;
        }
    }
    """
    CACHE = 4096  # rendered lines kept, by text; a screen is ~40, a 1 MB state is capped at 5,000

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._lines: list[str] = []
        self._strips: OrderedDict[str, Strip] = OrderedDict()
        self._style = None

    @property
    def lines(self) -> list[str]:
        return self._lines

    def show(self, lines: list[str]) -> None:
        """Replace the document and scroll to its top. Lines are split at line breaks and empty
        ones dropped, and drawn with tabs expanded and control characters replaced, exactly as
        `Log` does (the scrubber's snapshots were drawn by a Log; the look must not change)."""
        old, old_top = self._lines, self.scroll_offset.y
        if all(map(str.isprintable, lines)):  # no breaks, tabs or controls: checked in C
            lines = [line for line in lines if line]
            odd: list[str] = []
        else:
            lines = [part for line in lines for part in line.splitlines()]
            odd = [_shown(line) for line in lines if not line.isprintable()]
        self._lines = lines
        # cell widths only where they can differ from the length (a 1 MB state: 5,000 lines)
        wide = [line for line in lines if not line.isascii()]
        width = max(max(map(len, lines), default=0), max(map(cell_len, wide + odd), default=0))
        size = Size(width, len(lines))
        if size != self.virtual_size:
            old_height = self.virtual_size.height
            self.set_reactive(Widget.virtual_size, size)
            bar = self.vertical_scrollbar
            if not old_top and _thumb(bar.size.height, bar.window_size, old_height) == _thumb(
                bar.size.height, bar.window_size, size.height
            ) is not None:
                # the thumb is drawn the same (a 5,000-line state against one of 4,990): its
                # extent changes without repainting the 38 rows of the bar
                bar.set_reactive(ScrollBar.window_virtual_size, size.height)
            else:
                bar.window_virtual_size = size.height
            self.horizontal_scrollbar.window_virtual_size = size.width
        if old_top or self.scroll_offset.x:
            self.scroll_to(0, 0, animate=False, immediate=True)
            self.refresh()
            return
        height = self.size.height
        y = 0
        while y < height:  # repaint the runs of rows that differ, nothing else
            if _at(old, y) == _at(lines, y):
                y += 1
                continue
            start = y
            while y < height and _at(old, y) != _at(lines, y):
                y += 1
            self.refresh_lines(start, y - start)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        style = self._rich_style()
        if index >= len(self._lines):
            return Strip.blank(width, style)
        line = self._lines[index]
        strip = self._strips.get(line)
        if strip is None:
            shown = line if line.isprintable() else _shown(line)
            text = Text(shown, no_wrap=True)
            text.stylize(style)
            strip = Strip(text.render(self.app.console), cell_len(shown))
            self._strips[line] = strip
            if len(self._strips) > self.CACHE:
                self._strips.popitem(last=False)
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, index)

    def _rich_style(self):
        # `rich_style` walks the DOM's styles; resolved once per theme/focus change, not per line
        if self._style is None:
            self._style = self.rich_style
        return self._style

    def notify_style_update(self) -> None:
        self._style = None
        self._strips.clear()
        super().notify_style_update()


def _thumb(length: int, window: int, virtual: int) -> int | None:
    """The length in eighths of a cell of a scrollbar's thumb at the top, as Textual's
    ScrollBarRender draws it; None where it draws no thumb."""
    window = window if window < virtual else 0
    if not (window and length and virtual and length != virtual):
        return None
    return ceil(max(1, ceil(window) / (ceil(virtual) / length)) * 8)


def _shown(line: str) -> str:
    return _control("\ufffd", line.expandtabs())


def _at(lines: list[str], index: int) -> str | None:
    return lines[index] if index < len(lines) else None
