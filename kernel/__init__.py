"""vigil's runtime kernel: the event log, its store and the graph runtime.

Headless by rule: nothing here imports textual, rich, console or themes.

`from kernel import Store, RunStarted, ...` works as it always did, but each name is imported on
first use: `import kernel` alone loads no module of it (no log backend, no engine), and importing
`kernel.tools` for a workflow does not load the log.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - what the names below are, for type checkers
    from .codec import Corrupt, Record, Unknown
    from .errors import (
        Ambiguous,
        ConcurrencyError,
        EncodeFailed,
        ImportConflict,
        ImportFailed,
        NotFound,
        SchemaError,
        StoreClosed,
        StoreError,
        VigilError,
    )
    from .events import *  # noqa: F403
    from .log.folding import InterruptInfo, StateAt
    from .projection import RunInfo
    from .engine.runtime import Runtime
    from .engine.worker import Worker
    from .graph import DELETE, END, START, Graph
    from .log.port import EventLog
    from .registry import Registry
    from .secrets import Secret
    from .store import Store
    from .tools import tool

_HOMES = {
    # what a program embedding vigil needs, without knowing the package's rooms
    "Graph": "graph",
    "START": "graph",
    "END": "graph",
    "DELETE": "graph",
    "tool": "tools",
    "Registry": "registry",
    "Runtime": "engine.runtime",
    "Worker": "engine.worker",
    "EventLog": "log.port",
    "Store": "store",
    "Secret": "secrets",
    "Record": "codec",
    "Unknown": "codec",
    "Corrupt": "codec",
    "RunInfo": "projection",
    "StateAt": "log.folding",
    "InterruptInfo": "log.folding",
    **dict.fromkeys(
        [
            "VigilError",
            "ConcurrencyError",
            "EncodeFailed",
            "SchemaError",
            "StoreClosed",
            "StoreError",
            "NotFound",
            "Ambiguous",
            "ImportConflict",
            "ImportFailed",
        ],
        "errors",
    ),
}


def _events() -> Any:
    return importlib.import_module(".events", __name__)


def __getattr__(name: str) -> Any:
    if name == "__all__":  # `from kernel import *`: the event types are the kernel's vocabulary
        return [*_events().__all__, *_HOMES]
    home = _HOMES.get(name)
    # Event types are capitalised; a lowercase name is a submodule being looked for (`from kernel
    # import log`), which must not load the events.
    if home is None and name[:1].isupper() and name in _events().__all__:
        home = "events"
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, *_events().__all__})
