"""Concurrency limits of model clients (across runs and graphs; a provider's loopback server
counts the requests a limited OpenAIChat sends), a `vigil run` killed with SIGKILL mid-fan-out
that resumes under its limit, and `vigil graphs` printing the limits. Counted, never timed."""

from __future__ import annotations

import asyncio

from kernel.agents.models.openai import OpenAIChat
from kernel.limits import Limit, describe, waiting
from runtime_helpers import run, runtime
from test_limits import Gauge, until


# a model's limit ----------------------------------------------------------------------------


class CountingModel:
    """A model client as the agent loop sees one, counting the requests in flight."""

    def __init__(self, gauge: Gauge, gate: asyncio.Event, limit: Limit) -> None:
        self.name = "counting:m"
        self.limit = limit
        self._gauge, self._gate = gauge, gate

    async def complete(self, messages, tools, on_token):
        self._gauge.enter(messages[-1]["content"])
        try:
            await self._gate.wait()
            return {"role": "assistant", "content": "ok", "tool_calls": []}
        finally:
            self._gauge.leave()


def test_a_model_limit_caps_requests_across_runs_and_graphs(tmp_path):
    from kernel.agents.agent import agent_graph

    gauge = Gauge()
    gate = asyncio.Event()
    provider = Limit.shared("model test://provider", 2)
    # two agents, two clients, one provider: one line
    a = agent_graph("a", model=CountingModel(gauge, gate, provider), tools=[], system="s")
    b = agent_graph("b", model=CountingModel(gauge, gate, Limit.shared("model test://provider", 2)), tools=[], system="s")

    async def go():
        async with runtime(tmp_path / "v.db", a, b) as (store, rt):
            ids = [await rt.start(name, {"messages": [{"role": "user", "content": f"{name}{i}"}]})
                   for name in ("a", "b") for i in range(3)]
            await until(lambda: gauge.now == 2 and len(waiting()) == 4)
            assert {(w.kind, w.name) for w in waiting()} == {("llm", "counting:m")}
            gate.set()
            await rt.settle()
            return [(await store.run(r)).status for r in ids]

    assert run(go()) == ["completed"] * 6
    assert gauge.peak == 2 and len(gauge.entered) == 6


def test_clients_of_one_endpoint_share_one_limit():
    one = OpenAIChat("m1", base_url="http://127.0.0.1:9/v1", max_concurrency=4)
    two = OpenAIChat("m2", base_url="http://127.0.0.1:9/v1/", max_concurrency=3)
    other = OpenAIChat("m1", base_url="http://127.0.0.1:8/v1", max_concurrency=4)
    assert one.limit is two.limit and one.limit.max_concurrency == 3  # the last setting wins
    assert other.limit is not one.limit
    assert OpenAIChat("m3", base_url="http://127.0.0.1:9/v1").limit is None


def test_an_openai_client_limit_caps_the_requests_the_provider_sees(tmp_path):
    """Measured at a loopback server speaking the chat-completions wire format: four agent
    runs, `max_concurrency=2`, never more than two requests inside the server at once."""
    import threading

    from fake_providers import Provider, openai_stream
    from kernel.agents.agent import agent_graph

    lock, gate = threading.Lock(), threading.Event()
    inside = {"now": 0, "peak": 0, "total": 0}

    def plan(path, body):
        with lock:
            inside["now"] += 1
            inside["total"] += 1
            inside["peak"] = max(inside["peak"], inside["now"])
        gate.wait(30)
        with lock:
            inside["now"] -= 1
        return 200, openai_stream("Done."), False

    provider = Provider(plan)
    try:
        model = OpenAIChat("m", base_url=provider.url + "/v1", key_env=None, max_concurrency=2)
        g = agent_graph("chat", model=model, tools=[], system="s")

        async def go():
            async with runtime(tmp_path / "v.db", g) as (store, rt):
                ids = [await rt.start("chat", {"messages": [{"role": "user", "content": f"hi {i}"}]})
                       for i in range(4)]
                await until(lambda: inside["now"] == 2 and len(waiting()) == 2)
                assert describe(waiting()) == "queued: openai:m ×2 (2 running, limit 2)"
                gate.set()
                await rt.settle()
                return [(await store.run(r)).status for r in ids]

        assert run(go()) == ["completed"] * 4
    finally:
        gate.set()
        provider.close()
    assert inside["peak"] == 2 and inside["total"] == 4


# kill -9 mid-fan-out --------------------------------------------------------------------------


def _ledger(path) -> list[tuple[str, str, str]]:
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []


def _peak_per_process(lines) -> dict[str, int]:
    """The most nodes inside at once, per process, from the order of the ledger's lines (a
    process killed mid-node never writes `leave`: its count is not carried into the next)."""
    now: dict[str, int] = {}
    peak: dict[str, int] = {}
    for pid, what, _ in lines:
        if what in ("enter", "leave"):
            now[pid] = now.get(pid, 0) + (1 if what == "enter" else -1)
            peak[pid] = max(peak.get(pid, 0), now[pid])
    return peak


def test_kill_9_mid_fanout_then_resume_keeps_the_limit_and_runs_nothing_twice(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from cli_helpers import ROOT, vigil

    db, ledger = tmp_path / "v.db", tmp_path / "ledger.txt"
    flows = str(ROOT / "tests" / "limits_workflows.py")
    env = {**os.environ, "VIGIL_DB": str(db), "VIGIL_LEDGER": str(ledger)}

    def wait_for(condition, what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {_ledger(ledger)}"
            time.sleep(0.02)

    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "--workflows", flows, "run", "fanout6", "--headless"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        run_id = proc.stdout.readline().split()[1]
        tools = lambda: [b for _, what, b in _ledger(ledger) if what == "tool"]  # noqa: E731
        wait_for(lambda: len(tools()) == 2, "two tools running")
        first = tools()
        for b in first:
            (tmp_path / f"release-{b}").touch()
        wait_for(lambda: len(tools()) == 4, "the next two")
        in_flight = tools()[2:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)

    before = _ledger(ledger)
    assert len(before) == 10  # 4 enter, 4 tool, 2 leave: two branches never started
    for b in [f"b{i}" for i in range(6)]:
        (tmp_path / f"release-{b}").touch()
    out = subprocess.run([sys.executable, "-m", "console.cli", "--workflows", flows, "resume", run_id],
                         cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().rstrip().endswith(f"run {run_id}: completed")

    lines = _ledger(ledger)
    assert all(peak <= 2 for peak in _peak_per_process(lines).values()), lines
    tool_runs = [b for _, what, b in lines if what == "tool"]
    for b in first:
        assert tool_runs.count(b) == 1  # done before the kill: replayed from the log
    for b in in_flight:
        assert tool_runs.count(b) == 2  # idempotent, requested without an outcome: run again
    assert sorted(tool_runs) == sorted([*[f"b{i}" for i in range(6)], *in_flight])
    state = json.loads(vigil("state", run_id, "--json", db=db).stdout)["state"]
    assert state["joined"] == sorted(f"b{i} done" for i in range(6))
    assert vigil("verify", run_id, db=db).returncode == 0


def test_vigil_graphs_shows_the_limits(tmp_path):
    import json

    from cli_helpers import ROOT, vigil

    example = str(ROOT / "docs" / "examples" / "limits.py")
    text = vigil("--workflows", example, "graphs", db=tmp_path / "v.db")
    assert text.returncode == 0 and "  at once: 2 nodes, search_api 1\n" in text.stdout.decode()
    rows = {r["name"]: r for r in map(json.loads, vigil("--workflows", example, "graphs", "--json",
                                                         db=tmp_path / "v.db").stdout.splitlines())}
    assert rows["survey"]["max_concurrency"] == 2 and rows["survey"]["limits"] == {"search_api": 1}
    assert rows["support"]["max_concurrency"] is None and rows["support"]["limits"] == {}
