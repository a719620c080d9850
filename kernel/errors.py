"""The kernel's exception hierarchy; the CLI turns each into one line on stderr."""

from __future__ import annotations

from .events import ERROR_CATEGORIES, ErrorInfo

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
    "GraphError",
    "PatchError",
    "BadSignal",
    "ToolError",
    "ToolInputError",
    "ToolRejected",
    "ModelError",
    "InterruptRefused",
    "ActionError",
    "Diverged",
    "Suspended",
    "Failed",
    "Lost",
    "StepDiverged",
    "NodeError",
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


class GraphError(VigilError):
    """A graph that cannot run; the message names the culprit."""


class PatchError(VigilError):
    """A patch that cannot apply to the state it meets (the log is inconsistent)."""


class BadSignal(VigilError):
    """A signal row that does not say what to do, or who sent it, in a form the owner can apply."""


class ToolError(VigilError):
    """A tool failed; `retryable` says whether running it again may help. `info` classifies it
    when the tool knows better than "tool" (a timeout, a refused policy)."""

    def __init__(self, message: str, *, retryable: bool = False, info: ErrorInfo | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error_info = info


class ToolInputError(ToolError):
    """Arguments that do not fit the tool's signature (sent back to the model, not a crash)."""


class ToolRejected(ToolError):
    """A human (or the approval policy) refused the call; the reason goes back to the agent."""


class ModelError(VigilError):
    """A provider refused or broke off; `retryable` for rate limits, 5xx and dropped streams;
    `info` says which (the HTTP status, the transport error), set where the client saw it."""

    def __init__(self, message: str, *, retryable: bool = False, info: ErrorInfo | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error_info = info


class InterruptRefused(VigilError):
    """A decision that cannot be applied: unknown, already resolved, or shown a stale payload."""


class ActionError(VigilError):
    """A recorded effect failed; replayed as the same error within the same attempt (and the
    same classification, so a step that fails on it records what the effect recorded)."""

    def __init__(self, message: str, retryable: bool = False, info: ErrorInfo | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error_info = info


class Diverged(VigilError):
    """A re-executed call does not match the recorded one; the run is parked, never guessed."""

    def __init__(self, step_id: str, message: str) -> None:
        super().__init__(message)
        self.step_id = step_id


# How the engine unwinds a run's driver. None of these reaches a caller of the runtime.


class Suspended(BaseException):
    """Unwinds a node whose branch waits: for a human, or for a child run. A BaseException, like
    a cancellation, so a node's `except Exception` cannot swallow it (the driver also remembers
    it on the ctx, so even a bare `except:` cannot make a waiting step complete)."""


class Failed(Exception):
    """Ends the run as failed, with this message (and what kind of failure it was)."""

    def __init__(self, message: str, info: ErrorInfo | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.info = info


class Lost(Exception):
    """A driver's view and the log parted (another writer, a store error): stop driving."""


class StepDiverged(Exception):
    """Carries a Diverged out of a step to the driver, past the node's own `except` clauses."""

    def __init__(self, inner: Diverged) -> None:
        self.inner = inner


class NodeError(VigilError):
    """Raised by node or tool code that knows what kind of failure it is: the step (and, if it
    is not retried, the run) fails with this classification instead of a guessed one.

        raise NodeError("quota for today is used up", code="quota", category="rate_limit")
    """

    def __init__(
        self, message: str, *, code: str, category: str = "internal", retryable: bool = False
    ) -> None:
        if category not in ERROR_CATEGORIES:
            raise ValueError(f"category {category!r} is not one of {', '.join(ERROR_CATEGORIES)}")
        super().__init__(message)
        self.retryable = retryable
        self.error_info = ErrorInfo(code=code, category=category, retryable=retryable, message=message)
