"""The kernel's exception hierarchy; the CLI turns each into one line on stderr."""

from __future__ import annotations

__all__ = [
    "VigilError",
    "ConcurrencyError",
    "SchemaError",
    "StoreClosed",
    "NotFound",
    "Ambiguous",
    "ImportConflict",
    "StoreError",
    "ImportFailed",
    "EncodeFailed",
    "RunEnded",
    "CorruptRow",
]


class VigilError(Exception):
    """Base of every error the kernel raises on purpose."""


class ConcurrencyError(VigilError):
    """An append named an `expected_seq` that is not the run's last seq."""

    def __init__(self, run_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"run {run_id}: expected last seq {expected}, but the log is at {actual}"
        )
        self.run_id = run_id
        self.expected = expected
        self.actual = actual


class SchemaError(VigilError):
    """The database was written by a newer vigil, or is not a vigil database."""


class StoreClosed(VigilError):
    """The store was closed while an operation waited on it."""


class NotFound(VigilError):
    """A run, seq or file that was asked for does not exist."""


class Ambiguous(VigilError):
    """A run id prefix matches more than one run."""


class ImportConflict(VigilError):
    """An imported run already exists in the target database."""


class StoreError(VigilError):
    """SQLite refused an operation (locked past the busy timeout, disk full, read-only file)."""


class ImportFailed(VigilError):
    """A line of an import file that cannot be loaded exactly as it was exported."""


class EncodeFailed(VigilError):
    """An event holds a value the log cannot encode (an object, an integer past 64 bits)."""


class RunEnded(VigilError):
    """Something was to be appended to, or decided for, a run that has already ended."""


class CorruptRow(VigilError):
    """A row outside the event log (a run's projection) that does not hold what vigil wrote."""
