"""What kind of failure an exception is, decided where it happened (see README "Errors").

The sources that know best say so themselves: a model client sets the HTTP status's meaning on
its ModelError, a tool or node raises NodeError (or a ToolError with `info`). Everything else is
classified here by what it is, and what is left falls to the caller's default: "tool" for an
exception out of a tool, "internal" for one out of the engine or a node's own code.
"""

from __future__ import annotations

import asyncio
import re

from .errors import EncodeFailed, ModelError, ToolError, ToolInputError, ToolRejected
from .events import ERROR_CATEGORIES, ErrorInfo

__all__ = ["classify", "info", "ERROR_CATEGORIES"]


def info(code: str, category: str, message: str = "", *, retryable: bool = False) -> ErrorInfo:
    return ErrorInfo(code=code, category=category, retryable=retryable, message=_clean(message))


def classify(exc: BaseException, *, default: str = "internal") -> ErrorInfo:
    """The exception's own ErrorInfo, or one made from its type; never raises."""
    own = getattr(exc, "error_info", None)
    if isinstance(own, ErrorInfo):
        return own
    retryable = bool(getattr(exc, "retryable", False))
    message = str(exc)
    if isinstance(exc, ToolRejected):  # a human, an approval policy or a deny rule said no
        return info("rejected", "policy", message)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or _from_httpx(exc, "TimeoutException"):
        return info("timeout", "timeout", message or "timed out", retryable=True)
    if _from_httpx(exc, "TransportError"):
        return info(_snake(type(exc).__name__), "transport", message, retryable=True)
    if isinstance(exc, ToolInputError):
        return info("bad_arguments", "tool", message)
    if isinstance(exc, ToolError):
        return info("tool_error", "tool", message, retryable=retryable)
    if isinstance(exc, ModelError):  # one a client did not classify (a stream that broke off)
        return info("model_error", "transport" if retryable else "internal", message, retryable=retryable)
    if isinstance(exc, EncodeFailed):
        return info("unencodable", "internal", message)
    category = default if default in ERROR_CATEGORIES else "internal"
    return info(_snake(type(exc).__name__), category, message, retryable=retryable)


def _from_httpx(exc: BaseException, name: str) -> bool:
    # By name, so classifying never imports httpx (kernel code that has no model never needs it).
    return any(c.__name__ == name and c.__module__.startswith("httpx") for c in type(exc).__mro__)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _clean(text: str) -> str:
    # Encodable always: a lone surrogate in an error must not stop a run being recorded.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
