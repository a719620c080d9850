"""vigil's runtime kernel: the event log, its store and (soon) the graph runtime.

Headless by rule: nothing here imports textual, rich, console or themes.
"""

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
from .events import *  # noqa: F403 - the event types are the kernel's vocabulary
from .events import __all__ as _event_names
from .projection import RunInfo
from .log.folding import InterruptInfo, StateAt
from .secrets import Secret
from .store import Store

__all__ = [
    *_event_names,
    "Store",
    "Secret",
    "Record",
    "Unknown",
    "Corrupt",
    "RunInfo",
    "StateAt",
    "InterruptInfo",
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
]
