"""The console's garbage collector settings.

A scrubber move on a run with a large state decodes, diffs and draws it: about 100,000 objects
allocated and freed a move. At CPython's default thresholds (700, 10, 10) that is a full
collection every few moves, and each walks every live object of the app (Textual's DOM, the
timeline's pages, rendered lines): 100-180 ms of CPU, the scrubber's p99 on a 1 MB state
(bench/NOTES.md). Nearly all of those objects are freed by reference counting anyway; the
collector is only for cycles, so it can run far less often. The app also freezes what start-up
made (gc.freeze, in VigilApp.on_mount), so that no collection walks it again, and thaws it
when the app unmounts.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc", "THRESHOLDS"]

# young collections every 10,000 net allocations (not 700); full ones about 30x rarer
THRESHOLDS = (10_000, 20, 10)


def tune_gc() -> None:
    gc.set_threshold(*THRESHOLDS)
