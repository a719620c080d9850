"""MCP servers' tools as vigil tools, gated by an approval policy. See docs/mcp.md.

    from kernel.mcp import McpServer

Names load on first use, like `kernel`'s own (a package that imported its modules here would be
imported by each of them first: a cycle).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "McpServer", "McpTool", "McpUnavailable", "Policy", "load_policy", "policy_path",
    "configured_server", "configured_servers",
]

_WHERE = {
    "McpServer": "server", "McpTool": "tool", "McpUnavailable": "connection",
    "Policy": "policy", "load_policy": "policy", "policy_path": "policy",
    "configured_server": "config", "configured_servers": "config",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'kernel.mcp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kernel.mcp.{_WHERE[name]}"), name)
