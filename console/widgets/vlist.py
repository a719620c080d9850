"""A virtual list on Textual's Line API: rows are fetched by page in a worker and cached (a few
pages, LRU); `render_line` only reads the cache, never the database."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

__all__ = ["VirtualList"]


class VirtualList(ScrollView, can_focus=True):
    PAGE = 200
    MAX_PAGES = 24
    # Keep each drawn row until its page reloads: off for lists whose rows change with time
    # (the runs list shows ages), on for the scrubber's timeline, whose rows never change.
    CACHE_ROWS = False

    COMPONENT_CLASSES = {"vlist--cursor", "vlist--dim"}
    DEFAULT_CSS = """
    VirtualList { background: $surface; overflow-x: hidden; }
    VirtualList > .vlist--cursor {
        background: $block-cursor-blurred-background; color: $block-cursor-blurred-foreground; text-style: bold;
    }
    VirtualList:focus > .vlist--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    VirtualList > .vlist--dim { color: $foreground 50%; }
    """

    BINDINGS = [
        Binding("j,down", "move(1)", "down", show=False, id="list.down"),
        Binding("k,up", "move(-1)", "up", show=False, id="list.up"),
        Binding("pagedown", "page(1)", "page down", show=False, id="list.pagedown"),
        Binding("pageup", "page(-1)", "page up", show=False, id="list.pageup"),
        Binding("home", "jump(0)", "first", show=False, id="list.first"),
        Binding("end", "jump(-1)", "last", show=False, id="list.last"),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Moved(Message):
        """The cursor moved to `index` (the item there may not be loaded yet)."""

        def __init__(self, vlist: "VirtualList", index: int) -> None:
            super().__init__()
            self.vlist = vlist
            self.index = index

        @property
        def control(self) -> "VirtualList":
            return self.vlist

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.count = 0
        self._pages: OrderedDict[int, list[Any]] = OrderedDict()
        self._stale: set[int] = set()
        self._loading: set[int] = set()
        self._styles: dict[str, Any] = {}  # resolved once per theme, not once per line
        self._rows: dict[tuple[int, bool, int], Strip] = {}  # (index, cursor, width) -> drawn row

    # what subclasses provide -----------------------------------------------------------

    async def fetch_page(self, page: int) -> list[Any]:
        raise NotImplementedError

    def render_row(self, index: int, item: Any, width: int) -> Text:
        raise NotImplementedError

    # data -------------------------------------------------------------------------------

    def set_count(self, count: int) -> None:
        self.count = count
        self._rows.clear()  # a count comes with a new filter too: an index may be another event
        self.virtual_size = Size(self.size.width, count)
        if self.cursor >= count:
            self.cursor = max(0, count - 1)
        self.refresh()

    def invalidate(self) -> None:
        """Re-fetch every page when next shown, showing the old rows until then (no flicker)."""
        self._stale = set(self._pages)
        self._rows.clear()
        self.refresh()

    def item(self, index: int) -> Any | None:
        rows = self._pages.get(index // self.PAGE)
        if rows is None or index % self.PAGE >= len(rows):
            return None
        return rows[index % self.PAGE]

    def _request(self, page: int) -> None:
        if page in self._loading:
            return
        self._loading.add(page)
        self.run_worker(self._load(page), group=f"pages-{id(self)}", exit_on_error=False)

    async def _load(self, page: int) -> None:
        try:
            rows = await self.fetch_page(page)
        finally:
            self._loading.discard(page)
        self._pages[page] = rows
        self._pages.move_to_end(page)
        self._stale.discard(page)
        while len(self._pages) > self.MAX_PAGES:
            self._pages.popitem(last=False)
        if self._rows:
            self._rows = {k: v for k, v in self._rows.items() if k[0] // self.PAGE != page}
        # repaint only the rows of this page that are on screen (a prefetched page: none)
        top, height = self.scroll_offset.y, self.size.height
        first, last = max(top, page * self.PAGE), min(top + height, (page + 1) * self.PAGE)
        if first < last:
            self.refresh_lines(first, last - first)
        if page == self.cursor // self.PAGE:
            self.post_message(self.Moved(self, self.cursor))

    def prefetch(self, index: int, around: int) -> None:
        """Load the pages within `around` rows of `index` now, so that moving there later does
        not wait for the database (called once the cursor's own page and detail are shown)."""
        for near in (index - around, index + around):
            page = max(0, min(near, self.count - 1)) // self.PAGE
            if page not in self._pages and near < self.count:
                self._request(page)

    # drawing ----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        _, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if index >= self.count:
            return Strip.blank(width, self._base_style(False))
        page = index // self.PAGE
        if page not in self._pages or page in self._stale:
            self._request(page)
        cursor = index == self.cursor
        key = (index, cursor, width)
        if self.CACHE_ROWS and key in self._rows:
            return self._rows[key]
        item = self.item(index)
        if item is None:
            text = Text("  …", style=self.style_of("vlist--dim"))
        else:
            text = self.render_row(index, item, width)
        style = self._base_style(cursor)
        text.truncate(width, overflow="ellipsis", pad=True)
        text.no_wrap = True
        segments = list(text.render(self.app.console))
        if cursor:
            # One ink for the whole cursor row: the status and dim colours are chosen for the
            # list's background and drop below 4.5:1 on the cursor's (the icon still says it).
            segments = list(Segment.apply_style(segments, post_style=self._cursor_ink()))
        strip = Strip(segments, width).crop(0, width).apply_style(style)
        if self.CACHE_ROWS and item is not None:
            if len(self._rows) > 4 * self.PAGE:
                self._rows.clear()
            self._rows[key] = strip
        return strip

    def _cursor_ink(self) -> Style:
        ink = self._styles.get("__ink__")
        if ink is None:
            ink = self._styles["__ink__"] = Style(color=self._base_style(True).color)
        return ink

    def style_of(self, component: str):
        """A component's colours and text style only, so the row's own background (the cursor)
        shows through every segment."""
        style = self._styles.get(component)
        if style is None:
            style = self._styles[component] = self.get_component_rich_style(component, partial=True)
        return style

    def _base_style(self, cursor: bool):
        key = "__cursor__" if cursor else "__base__"
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            if cursor:
                style = style + self.get_component_rich_style("vlist--cursor")
            self._styles[key] = style
        return style

    def notify_style_update(self) -> None:
        self._styles.clear()
        self._rows.clear()
        super().notify_style_update()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, self.count)

    # moving -----------------------------------------------------------------------------

    def watch_cursor(self, old: int, index: int) -> None:
        if index // self.PAGE not in self._pages and index < self.count:
            self._request(index // self.PAGE)  # now, not when the next frame draws the row
        top = self.scroll_offset.y
        if top <= index < top + self.size.height:
            # still on screen: repaint the two rows that changed, not the whole list
            self.refresh_line(old)
            self.refresh_line(index)
        else:
            self.scroll_to_region(Region(0, index, 1, 1), animate=False, force=True)
            self.refresh()
        self.post_message(self.Moved(self, index))

    def action_move(self, delta: int) -> None:
        if self.count:
            self.cursor = min(self.count - 1, max(0, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.size.height - 1))

    def action_jump(self, index: int) -> None:
        if self.count:
            self.cursor = self.count - 1 if index < 0 else min(index, self.count - 1)

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < self.count:
            self.cursor = index
