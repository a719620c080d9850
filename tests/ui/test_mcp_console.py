"""An MCP tool's approval in the console: the prompt is the one every gated tool call gets."""

from __future__ import annotations

import asyncio
from console.app import VigilApp
from console.screens.prompt import PromptScreen
from kernel.registry import Registry
from ui_helpers import until


def test_approve_an_mcp_write_in_the_console(tmp_path, monkeypatch):
    import test_mcp  # tests/ is on the path: the same repo and server helpers

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    test_mcp._filesystem_server_or_skip()
    from kernel.demos.mcp_repo import repo_notes_graph

    repo = test_mcp.git_repo(tmp_path / "repo").resolve()
    registry = Registry()
    registry.add(repo_notes_graph(str(repo)))

    async def go():
        app = VigilApp(tmp_path / "v.db", registry)
        async with app.run_test(size=(120, 40)) as pilot:
            run_id = await app.runtime.start("repo-notes", {"messages": [{"role": "user", "content": "notes"}]})
            for _ in range(150):
                if await app.store.interrupts():
                    break
                await pilot.pause(0.1)
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))
            assert app.screen.run_id == run_id
            assert "tool fs_write_file will run with these arguments" in str(app.screen.query_one("#payload").render())
            assert not (repo / "NOTES.md").exists()
            await pilot.press("a")
            await until(pilot, lambda: not isinstance(app.screen, PromptScreen))
            for _ in range(150):
                if (repo / "NOTES.md").exists():
                    break
                await pilot.pause(0.1)
            assert (repo / "NOTES.md").read_text().startswith("# Notes")
            (resolved,) = [r.event for r in await app.store.events(run_id, types=["InterruptResolved"])]
            assert resolved.decision == "approve" and resolved.actor is not None

    asyncio.run(go())
