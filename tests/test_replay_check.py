"""`vigil replay`: the current graph code re-executed against recorded runs, in memory. Unchanged
code replays OK (completed, failed, waiting, forked, parallel, in-doubt runs); a changed input,
a removed call, an added interrupt, a changed reducer or edge is named by run and seq; no effect
runs and nothing is written. Every test runs on SQLite and PostgreSQL (`both_backends`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kernel.engine.replaycheck import replay_all
from kernel.events import ActionRequested, InterruptRaised, StepCompleted
from kernel.graph import END, START, Graph
from kernel.store import Store
from kernel.tools import tool
from replay_helpers import record, replay, seq_of, shop, status_of
from runtime_helpers import events_of, pending, registry, run, runtime, stored_bytes


# unchanged code replays OK ---------------------------------------------------------------------


def test_a_completed_run_replays_ok(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path))
    assert status_of(db, run_id) == "completed"
    verdict = replay(db, shop(out=tmp_path), run_id)
    assert verdict.ok and not verdict.in_flight, verdict


def test_a_failed_run_with_retries_replays_ok(both_backends):
    db = both_backends
    from kernel.graph import RetryPolicy

    def flaky() -> Graph:
        async def work(state, ctx):
            await ctx.tool("pay", amount=3)
            raise ValueError("the shop is closed")

        @tool()
        async def pay(amount: int) -> dict:
            return {"paid": amount}

        g = Graph("flaky", tools=[pay])
        g.add_node("work", work, retry=RetryPolicy(attempts=2, backoff="fixed", initial=0.01, jitter=False))
        g.add_edge(START, "work")
        g.add_edge("work", END)
        return g

    run_id = record(db, flaky())
    assert status_of(db, run_id) == "failed"
    assert replay(db, flaky(), run_id).ok


def test_a_run_waiting_at_an_approval_replays_ok_up_to_its_frontier(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path), approve=False)
    assert status_of(db, run_id) == "waiting"
    verdict = replay(db, shop(out=tmp_path), run_id)
    assert verdict.ok and verdict.in_flight, verdict


def test_a_forked_run_replays_ok(both_backends, tmp_path):
    db = both_backends
    parent = record(db, shop(out=tmp_path))

    async def fork():
        async with runtime(db, shop(out=tmp_path)) as (store, rt):
            at = [r.seq for r in await store.events(parent) if isinstance(r.event, StepCompleted)][0]
            child = await rt.fork(parent, at)
            await rt.adopt(child)
            await rt.settle()
            for raised in pending(rt, child) if child in rt.drivers else []:
                await rt.resolve(child, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
            await rt.settle()
            return child, (await store.run(child)).status

    child, status = run(fork())
    assert status == "completed"
    assert replay(db, shop(out=tmp_path), child).ok


def test_parallel_branches_that_finished_in_any_order_replay_ok(both_backends):
    from kernel.demos.research import graph

    db = both_backends
    run_id = record(db, graph, input={"topic": "replay"})
    assert status_of(db, run_id) == "completed"
    assert replay(db, graph, run_id).ok


def test_an_effect_in_doubt_after_a_crash_replays_ok(both_backends):
    db = both_backends
    hang = asyncio.Event()

    def transfer(block: bool) -> Graph:
        @tool()  # not idempotent: after a crash, a human says whether it ran
        async def send(amount: int) -> dict:
            if block:
                await hang.wait()
            return {"sent": amount}

        async def work(state, ctx):
            return {"sent": await ctx.tool("send", amount=7)}

        g = Graph("transfer", tools=[send])
        g.add_node("work", work)
        g.add_edge(START, "work")
        g.add_edge("work", END)
        return g

    async def crash():
        async with runtime(db, transfer(True)) as (store, rt):
            run_id = await rt.start("transfer")
            while not [e for e in await events_of(store, run_id) if isinstance(e, ActionRequested)]:
                await asyncio.sleep(0.01)
            return run_id  # the process goes with the effect in flight

    run_id = run(crash())
    record_answer = run_id  # resumed: asked whether it ran, answered, completed

    async def answer():
        async with runtime(db, transfer(False)) as (store, rt):
            await rt.resume()
            await rt.settle()
            doubt = pending(rt, record_answer)[0]
            await rt.resolve(record_answer, doubt.interrupt_id, "retry", payload_hash=doubt.payload_hash)
            await rt.settle()
            return (await store.run(record_answer)).status

    assert run(answer()) == "completed"
    verdict = replay(db, transfer(False), run_id)
    assert verdict.ok, verdict


# changed code is named by run and seq ----------------------------------------------------------


def test_a_changed_tool_input_diverges_at_the_recorded_call(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path))
    verdict = replay(db, shop(amount=6, out=tmp_path), run_id)
    call = seq_of(db, run_id, lambda e: isinstance(e, ActionRequested) and e.action_id == "1.buy#0")
    assert verdict.status == "diverged" and verdict.seq == call, verdict
    assert '{"amount":5}' in verdict.reason and '{"amount":6}' in verdict.reason


def test_a_removed_call_diverges_at_the_call_no_longer_made(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path))
    verdict = replay(db, shop(drop_receipt=True, out=tmp_path), run_id)
    receipt = seq_of(db, run_id, lambda e: isinstance(e, ActionRequested) and e.action_id == "1.buy#1")
    assert verdict.status == "diverged" and verdict.seq == receipt, verdict
    assert "ends the step without it" in verdict.reason


def test_an_added_interrupt_diverges_where_the_log_has_the_tool_call(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path))
    verdict = replay(db, shop(ask=True, out=tmp_path), run_id)
    call = seq_of(db, run_id, lambda e: isinstance(e, ActionRequested) and e.action_id == "1.buy#0")
    assert verdict.status == "diverged" and verdict.seq == call, verdict
    assert "interrupt 'sure?'" in verdict.reason


def test_a_changed_reducer_diverges_at_the_step_with_another_state(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path))
    verdict = replay(db, shop(reducer="replace", out=tmp_path), run_id)
    done = seq_of(db, run_id, lambda e: isinstance(e, StepCompleted) and e.step_id == "1.buy")
    assert verdict.status == "diverged" and verdict.seq == done, verdict
    assert "the state after it differs" in verdict.reason and "keys log" in verdict.reason


def test_a_changed_edge_diverges_at_the_step_with_other_next_nodes(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path))
    verdict = replay(db, shop(wrap=True, out=tmp_path), run_id)
    done = seq_of(db, run_id, lambda e: isinstance(e, StepCompleted) and e.step_id == "1.buy")
    assert verdict.status == "diverged" and verdict.seq == done, verdict
    assert "['ship']" in verdict.reason and "['wrap']" in verdict.reason


def test_an_interrupt_resolved_in_the_log_but_removed_from_the_code_diverges(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(ask=True, out=tmp_path))
    assert status_of(db, run_id) == "completed"
    verdict = replay(db, shop(out=tmp_path), run_id)
    asked = seq_of(db, run_id, lambda e: isinstance(e, InterruptRaised) and e.interrupt_id == "1.buy#0")
    assert verdict.status == "diverged" and verdict.seq == asked, verdict


# the world is never touched, the log never written ---------------------------------------------


def _log_content(db):
    """SQLite: the database file's bytes (the runtime that wrote it is closed: checkpointed).
    PostgreSQL: every row of every table, and the log's newest position."""
    if isinstance(db, Path):
        return db.read_bytes()

    async def go():
        async with await Store.open(db, readonly=True) as store:
            return await store.head(), await stored_bytes(db)

    return run(go())


def test_replay_runs_no_effect_and_writes_nothing(both_backends, tmp_path):
    db = both_backends
    calls: list = []
    done = record(db, shop(out=tmp_path, calls=calls))
    label = tmp_path / "label.txt"
    assert label.exists() and calls == [5, 1]
    label.unlink()
    # Approved in the log, but its owner went away before the tool ran: the frontier is a
    # resolved approval whose tool the recording never ran. Replay must not run it either.
    waiting = record(db, shop(out=tmp_path, calls=calls), approve=False)

    async def approve_without_driving():
        async with runtime(db, shop(out=tmp_path)) as (store, rt):
            raised = (await rt.adopt(waiting, drive=False)).view.pending_interrupts()[0]
            await rt.resolve(waiting, raised.interrupt_id, "approve", payload_hash=raised.payload_hash, drive=False)

    run(approve_without_driving())
    calls.clear()
    before = _log_content(db)

    async def go():
        async with await Store.open(db, readonly=True) as store:
            return [v async for v in replay_all(store, registry(shop(out=tmp_path, calls=calls)))]

    verdicts = run(go())
    assert {v.run_id: v.status for v in verdicts} == {done: "ok", waiting: "ok"}
    assert calls == [] and not label.exists(), "replay ran a tool"
    assert _log_content(db) == before
