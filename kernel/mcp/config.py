"""MCP servers declared once in a config file, for any workflow to use by name.

    # ~/.config/vigil/mcp.toml   (or $XDG_CONFIG_HOME/vigil/mcp.toml)
    [servers.git]
    command = ["mcp-server-git"]
    prefix = ""
    [servers.web]
    url = "http://127.0.0.1:8000/mcp"
    call_timeout = 30

    git = configured_server("git")      # in a workflow module
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import VigilError
from .policy import policy_path
from .server import McpServer

__all__ = ["servers_path", "configured_servers", "configured_server"]

_KEYS = {"command", "url", "env", "cwd", "prefix", "start_timeout", "call_timeout"}


def servers_path() -> Path:
    return policy_path().with_name("mcp.toml")


def configured_servers(path: Path | None = None) -> dict[str, McpServer]:
    path = path or servers_path()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise VigilError(f"cannot read {path}: {exc}") from None
    servers = {}
    for name, raw in (data.get("servers") or {}).items():
        if not isinstance(raw, dict):
            raise VigilError(f"{path}: servers.{name} is a table")
        extra = set(raw) - _KEYS
        if extra:
            raise VigilError(f"{path}: servers.{name}: unknown key {sorted(extra)[0]!r}")
        kw: dict[str, Any] = dict(raw)
        if isinstance(kw.get("command"), str):
            raise VigilError(f"{path}: servers.{name}.command is a list: [\"program\", \"arg\", ...]")
        try:
            servers[name] = McpServer(name, **kw)
        except TypeError as exc:
            raise VigilError(f"{path}: servers.{name}: {exc}") from None
    return servers


def configured_server(name: str, path: Path | None = None) -> McpServer:
    servers = configured_servers(path)
    if name not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise VigilError(f"no MCP server {name!r} in {path or servers_path()} (declared: {known})")
    return servers[name]
