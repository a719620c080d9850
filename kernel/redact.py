"""Strings that look like secrets are replaced before anything reaches the log.

The runtime redacts run inputs, tool inputs and outputs, model messages, interrupt payloads and
state updates, and hands the redacted values to the graph's code, so a replay sees exactly what
the live run saw. Extra patterns: env VIGIL_REDACT (regexes separated by newlines) or add_pattern().
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["redact", "add_pattern", "REDACTED"]

REDACTED = "[REDACTED]"

_PATTERNS = [
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
    r"\bsk-ant-[A-Za-z0-9_\-]{20,}",  # Anthropic
    r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}",  # OpenAI
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub
    r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API key
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{16,}",
]
_extra = [p for p in os.environ.get("VIGIL_REDACT", "").splitlines() if p.strip()]
_regex = re.compile("|".join(f"(?:{p})" for p in _PATTERNS + _extra), re.DOTALL)


def add_pattern(pattern: str) -> None:
    """Redact strings matching `pattern` too (for this process)."""
    global _regex
    _extra.append(pattern)
    _regex = re.compile("|".join(f"(?:{p})" for p in _PATTERNS + _extra), re.DOTALL)


def redact(value: Any) -> Any:
    """`value` with secret-looking substrings replaced; containers are copied only if changed."""
    if isinstance(value, str):
        return _regex.sub(REDACTED, value) if len(value) >= 16 else value
    if isinstance(value, dict):
        items = [(redact(k), redact(v)) for k, v in value.items()]
        if all(rk is k and rv is v for (rk, rv), (k, v) in zip(items, value.items())):
            return value
        return dict(items)
    if isinstance(value, (list, tuple)):
        items = [redact(v) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value
