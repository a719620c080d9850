"""An agent that reads a git repository and writes and commits a file in it, through two real MCP
servers: mcp-server-git (PyPI) and @modelcontextprotocol/server-filesystem (npm). The reads run
unasked (readOnlyHint); the write and the commit wait for a human. Not among the default demos:
listing their tools starts the servers, so only who asks for it pays for that.

    VIGIL_MCP_REPO=/path/to/repo vigil --workflows kernel.demos.mcp_repo
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..agents.agent import agent_graph
from ..agents.models.scripted import ScriptedModel, call, reply

__all__ = ["register", "filesystem_command", "repo_notes_graph"]

NPM_PREFIX = Path.home() / ".cache" / "vigil-npm"  # where .ci/run installs the npm server


def filesystem_command(root: str) -> list[str]:
    """The filesystem server installed by .ci/run, one on PATH, or npx fetching it."""
    found = shutil.which("mcp-server-filesystem") or shutil.which(
        "mcp-server-filesystem", path=str(NPM_PREFIX / "node_modules" / ".bin"))
    if found:
        return [found, root]
    return ["npx", "-y", "@modelcontextprotocol/server-filesystem", root]


def git_command() -> list[str]:
    # The console script beside this interpreter: a venv's bin is not always on PATH.
    import sys

    beside = Path(sys.executable).parent / "mcp-server-git"
    return [str(beside) if beside.exists() else "mcp-server-git"]


def _script(repo: str):
    steps = [
        ("git_status", {"repo_path": repo}),
        ("fs_write_file", {"path": f"{repo}/NOTES.md", "content": "# Notes\n\nWritten by the vigil MCP demo.\n"}),
        ("git_add", {"repo_path": repo, "files": ["NOTES.md"]}),
        ("git_commit", {"repo_path": repo, "message": "Add NOTES.md"}),
    ]

    def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
        results = [m for m in messages if m["role"] == "tool"]
        if results:
            outcome = json.loads(results[-1]["content"])
            if isinstance(outcome, dict) and "error" in outcome:
                return reply(f"I stopped: {results[-1]['name']} failed ({outcome['error']}).")
        if len(results) < len(steps):
            name, args = steps[len(results)]
            return call(name, args, call_id=f"call_{len(results)}")
        return reply("Committed NOTES.md.")

    return script


def repo_notes_graph(repo: str, *, git: Any = None, fs: Any = None):
    from ..mcp import McpServer

    git = git or McpServer("git", command=git_command(), prefix="")
    fs = fs or McpServer("fs", command=filesystem_command(repo))
    tools = [t for t in git.tools() if t.name in ("git_status", "git_add", "git_commit", "git_log")]
    tools += [t for t in fs.tools() if t.name in ("fs_read_text_file", "fs_write_file")]
    return agent_graph(
        "repo-notes", model=ScriptedModel("repo-notes", _script(repo)), tools=tools,
        system="You keep notes in a git repository.",
        description="MCP demo: read a repo, write NOTES.md and commit it (write and commit gated)",
    )


def register(registry: Any) -> None:
    repo = str(Path(os.environ.get("VIGIL_MCP_REPO") or os.getcwd()).resolve())
    registry.add(repo_notes_graph(repo))
