"""The many-runs benchmark's pieces do what its numbers claim: the loopback model server speaks the
streaming wire format the kernel's OpenAI client reads (tokens, then a tool call, then an answer),
vigil's real agent loop runs on it to the end on both backends, and `bench.run --only --update`
puts rows into RESULTS.md without touching the others. No timings are asserted (those are bench/'s)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.agents.agent import agent_graph
from kernel.agents.models.openai import OpenAIChat
from kernel.engine.runtime import Runtime
from kernel.events import RunCompleted
from kernel.registry import Registry
from kernel.store import Store
from kernel.tools import tool

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def model_server():
    proc = subprocess.Popen([sys.executable, "-m", "bench.openai_stream_server", "--turns", "3", "--tokens", "4"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().split()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()  # the server ends with its stdin
        proc.wait(timeout=10)


def _model(url: str) -> OpenAIChat:
    return OpenAIChat("bench", base_url=f"{url}/v1", key_env=None, timeout=30)


async def lookup(order: str) -> dict:
    """Look up an order by its id."""
    return {"order": order, "status": "shipped"}


def test_server_streams_tokens_then_a_tool_call_then_answers(model_server):
    async def go():
        model = _model(model_server)
        tokens: list[str] = []
        user = [{"role": "user", "content": "where is my order?"}]
        first = await model.complete(user, [], tokens.append)
        last = await model.complete(user + [{"role": "assistant", "content": "", "tool_calls": []}] * 2, [], None)
        return first, tokens, last

    first, tokens, last = asyncio.run(go())
    assert tokens == ["word0 ", "word1 ", "word2 ", "turn0."]
    assert first["content"] == "word0 word1 word2 turn0."
    assert first["tool_calls"] == [{"id": "call_0", "name": "lookup", "arguments": {"order": "A-0000"}}]
    assert first["usage"]["output_tokens"] == 4
    assert last["tool_calls"] == [] and last["content"].endswith("turn2.")


def test_server_holds_first_turns_until_released(model_server):
    import json
    import urllib.request

    def get(path):
        with urllib.request.urlopen(model_server + path, timeout=10) as r:
            return json.loads(r.read())

    async def go():
        get("/hold")
        call = asyncio.ensure_future(_model(model_server).complete([{"role": "user", "content": "hi"}], [], None))
        while get("/stats")["waiting"] < 1:
            await asyncio.sleep(0.01)
        assert not call.done()
        get("/release")
        return await call

    assert asyncio.run(go())["tool_calls"][0]["name"] == "lookup"


def test_agent_loop_runs_to_the_end_on_the_server(model_server, both_backends):
    """Three model turns, a tool call on the first two: five steps, on SQLite and PostgreSQL."""
    async def go():
        registry = Registry()
        registry.add(agent_graph("many", model=_model(model_server), tools=[tool(idempotent=True)(lookup)], system="s"))
        async with await Store.open(both_backends) as store:
            async with Runtime(store, registry) as rt:
                run_id = await rt.start("many", {"messages": [{"role": "user", "content": "where?"}]})
                await rt.settle()
            types = [r.type async for r in store.iter_events(run_id)]
            state = await store.state_at(run_id)
        return types, state.state

    types, state = asyncio.run(go())
    assert types.count("StepCompleted") == 5
    assert types[-1] == RunCompleted.__name__
    tools = [m for m in state["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tools] == ['{"order": "A-0000", "status": "shipped"}',
                                              '{"order": "A-0001", "status": "shipped"}']


def test_update_replaces_and_adds_rows(tmp_path, monkeypatch):
    from bench import run

    results = tmp_path / "RESULTS.md"
    results.write_text("# B\n\n| case | setup | vigil | ceiling / peer | ratio | goal | met |\n|---|---|---|---|---|---|---|\n"
                       "| a | s | 1/s | - | - | g | yes |\n| b | s | 2/s | - | - | g | yes |\n\n## notes\n")
    monkeypatch.setattr(run, "RESULTS", results)
    notes = tmp_path / "NOTES.md"
    notes.write_text("## notes, as they are now\n")
    monkeypatch.setattr(run, "NOTES", notes)
    row = dict(setup="s2", peer="-", ratio=None, goal="g", ok=False)
    run._update([dict(row, case="a", vigil="3/s"), dict(row, case="c", vigil="4/s")])
    lines = results.read_text().split("\n")
    assert lines[4] == "| a | s2 | 3/s | - | - | g | **no** |"
    assert lines[5] == "| b | s | 2/s | - | - | g | yes |"
    assert lines[6] == "| c | s2 | 4/s | - | - | g | **no** |"
    assert lines[8] == "## notes, as they are now"
    # notes with a table of their own: updating again keeps one copy of them (it appended another)
    notes.write_text("## notes\n\n| x | y |\n|---|---|\n| 1 | 2 |\n")
    run._update([])
    run._update([dict(row, case="b", vigil="5/s")])
    text = results.read_text()
    assert text.count("## notes") == 1 and "| b | s2 | 5/s |" in text


def test_build_runs_lists_every_run(tmp_path):
    from bench.console_load import build_runs

    path = tmp_path / "runs.db"
    asyncio.run(build_runs(path, 300))
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*), sum(status = 'completed') FROM runs").fetchone() == (300, 300)
    conn.close()


@pytest.mark.parametrize("which", ["langgraph", "langgraph_lc"])
def test_langgraph_peers_run_the_agent_to_the_end_on_the_server(model_server, tmp_path, which):
    """Both peer rows do the whole agent: LangGraph on vigil's client, and as its users write it
    (langchain-openai's ChatOpenAI, ToolNode): three model turns a run, every run completed."""
    pytest.importorskip("langchain_openai" if which == "langgraph_lc" else "langgraph")
    from bench import many_runs_probe

    out = asyncio.run(getattr(many_runs_probe, which)(model_server, 3, str(tmp_path / "lg.db")))
    assert out["completed"] == 3 and not out["timed_out"]
    assert out["model_calls"] == 3 * 3 and out["events"] > 0
