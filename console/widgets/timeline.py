"""A run's events as a virtual list: one row per event (or per event of the chosen types)."""

from __future__ import annotations

from array import array

from rich.text import Text

from kernel.codec import Corrupt, Record, Unknown
from kernel.store import Store

from ..format import clock, summary
from .vlist import VirtualList

__all__ = ["Timeline", "TYPE_STYLE"]

TYPE_STYLE = {
    "Run": "$primary",
    "Step": "$secondary",
    "Action": "$foreground",
    "Interrupt": "$warning",
    "Failed": "$error",
}


class Timeline(VirtualList):
    CACHE_ROWS = True  # an event's row never changes
    COMPONENT_CLASSES = VirtualList.COMPONENT_CLASSES | {f"timeline--{k.lower()}" for k in TYPE_STYLE}
    DEFAULT_CSS = "\n".join(
        f"Timeline > .timeline--{k.lower()} {{ color: {v}; }}" for k, v in TYPE_STYLE.items()
    )

    def __init__(self, store: Store, run_id: str, **kw) -> None:
        super().__init__(**kw)
        self.store = store
        self.run_id = run_id
        self.seqs: array | None = None  # set when filtered by type
        self.types: tuple[str, ...] | None = None

    def seq_at(self, index: int) -> int:
        return self.seqs[index] if self.seqs is not None else index + 1

    def index_of(self, seq: int) -> int:
        if self.seqs is None:
            return seq - 1
        from bisect import bisect_left

        return min(bisect_left(self.seqs, seq), max(0, len(self.seqs) - 1))

    async def fetch_page(self, page: int) -> list[Record]:
        start = page * self.PAGE
        if start >= self.count:
            return []
        return await self.store.events(self.run_id, self.seq_at(start), limit=self.PAGE, types=self.types)

    def render_row(self, index: int, record: Record, width: int) -> Text:
        kind = "Failed" if record.type.endswith("Failed") or isinstance(record.event, (Corrupt, Unknown)) else next(
            (k for k in ("Run", "Step", "Action", "Interrupt") if record.type.startswith(k)), "Action")
        style = self.style_of(f"timeline--{kind.lower()}")
        text = Text(no_wrap=True)
        text.append(f"{record.seq:>7} ", style=self.style_of("vlist--dim"))
        if width > 60:
            text.append(f"{clock(record.ts_ns)} ", style=self.style_of("vlist--dim"))
        text.append(f"{record.type:<18} ", style=style)
        text.append(summary(record.event))
        return text
