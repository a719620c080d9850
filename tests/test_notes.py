"""ctx.note: a Note event per call position, redacted, never noted twice by a replay (after a
decision, a retry, a crash), left out of the state, and listed by `vigil events --type`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import note_workflows as wf
from cli_helpers import ROOT, vigil
from kernel.codec import decode, encode
from kernel.events import Note
from kernel.graph import END, START, Graph
from runtime_helpers import events_of, pending, run, runtime

HERE = Path(__file__).resolve().parent


def _notes(events: list) -> list[Note]:
    return [e for e in events if isinstance(e, Note)]


def test_a_note_is_recorded_once_across_a_decision_and_redacted(new_log):
    db = new_log()

    async def go():
        async with runtime(db, wf.noting) as (store, rt):
            run_id = await rt.start("noting", {"order": "B-7"})
            await rt.settle()
            raised = pending(rt, run_id)[0]
            await rt.resolve(run_id, raised.interrupt_id, "answer", "yes", payload_hash=raised.payload_hash)
            await rt.settle()
            state = await store.state_at(run_id)
            return run_id, await events_of(store, run_id), state, await store.run(run_id)

    run_id, events, state, info = run(go())
    assert info.status == "completed"
    notes = _notes(events)
    # The step ran twice (before and after the answer); the first note is in the log once.
    assert [(n.name, n.note_id, n.step_id) for n in notes] == [
        ("order.checked", "1.work#0", "1.work"), ("order.shipped", "1.work#2", "1.work"),
    ]
    assert notes[0].payload == {"order": "B-7", "ok": True}
    assert wf.TOKEN not in json.dumps(notes[1].payload) and notes[1].payload["answer"] == "yes"
    # The fold ignores notes: the state is the node's update alone, and nothing is a problem.
    assert state.state == {"order": "B-7", "shipped": "yes"} and state.problems == []


def test_a_retried_step_does_not_note_twice(new_log):
    db = new_log()
    wf._attempts.clear()

    async def go():
        async with runtime(db, wf.retrying) as (store, rt):
            run_id = await rt.start("retrying")
            await rt.settle()
            return await events_of(store, run_id), await store.run(run_id)

    events, info = run(go())
    assert info.status == "completed" and wf._attempts == [1, 2]
    assert [(n.name, n.note_id) for n in _notes(events)] == [("attempted", "1.work#0")]


def test_notes_in_tasks_take_positions_by_creation_order(new_log):
    db = new_log()

    async def go():
        async with runtime(db, wf.gathering) as (store, rt):
            run_id = await rt.start("gathering")
            await rt.settle()
            return await events_of(store, run_id)

    notes = _notes(run(go()))
    # The branches finish in reverse order; each note's id is its task's position all the same.
    assert sorted((n.note_id, n.payload["i"]) for n in notes) == [
        ("1.work#t0.0", 0), ("1.work#t1.0", 1), ("1.work#t2.0", 2),
    ]
    assert [n.payload["i"] for n in notes] == [2, 1, 0]


def test_a_step_re_executed_after_a_crash_does_not_note_twice(new_log):
    db = new_log()
    script = (
        "import asyncio, sys\n"
        "import note_workflows as wf\n"
        "from runtime_helpers import runtime\n"
        "async def main():\n"
        "    async with runtime(sys.argv[1], wf.crashing) as (store, rt):\n"
        "        print(await rt.start('crashing'), flush=True)\n"
        "        await rt.settle()\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "VIGIL_TEST_CRASH": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
    proc = subprocess.run([sys.executable, "-c", script, str(db)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr

    async def recover():
        async with runtime(db, wf.crashing) as (store, rt):
            # the log says which run (the process may die before its print reaches stdout)
            (info,) = await store.runs()
            run_id = info.run_id
            before = _notes(await events_of(store, run_id))
            assert await rt.resume(run_id) == [run_id]
            await rt.settle()
            return run_id, before, await events_of(store, run_id), await store.run(run_id)

    run_id, before, events, info = run(recover())
    assert [n.name for n in before] == ["before.crash"]  # committed before the process died
    assert info.status == "completed"
    assert [(n.name, n.note_id) for n in _notes(events)] == [("before.crash", "1.work#0")]


def test_a_note_where_the_log_has_another_call_diverges(new_log):
    db = new_log()

    def graph(noting: bool) -> Graph:
        g = Graph("swap")

        async def work(state, ctx):
            if noting:
                ctx.note("first", {"a": 1})
            else:
                await ctx.random()
            return {"answer": await ctx.interrupt("go on?")}

        g.add_node("work", work)
        g.add_edge(START, "work")
        g.add_edge("work", END)
        return g

    async def first():
        async with runtime(db, graph(True)) as (store, rt):
            run_id = await rt.start("swap")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, raised = run(first())

    async def second():
        async with runtime(db, graph(False)) as (store, rt):
            await rt.resolve(run_id, raised.interrupt_id, "answer", "ok", payload_hash=raised.payload_hash)
            await rt.settle()
            return await store.run(run_id)

    info = run(second())
    assert info.status == "diverged"
    assert "note first" in info.error and "random" in info.error


def test_a_note_needs_a_name(new_log):
    db = new_log()
    g = Graph("nameless")

    async def work(state, ctx):
        ctx.note("", {"x": 1})
        return {}

    g.add_node("work", work)
    g.add_edge(START, "work")
    g.add_edge("work", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("nameless")
            await rt.settle()
            return await store.run(run_id)

    info = run(go())
    assert info.status == "failed" and "a note needs a name" in info.error


def test_a_note_body_round_trips_and_an_old_reader_sees_a_known_type():
    body, crc = encode(Note(note_id="1.a#0", step_id="1.a", name="n", payload={"k": [1, 2]}))
    assert decode("Note", body, crc) == Note(note_id="1.a#0", step_id="1.a", name="n", payload={"k": [1, 2]})


def test_cli_events_type_filter_takes_a_comma_list(new_log):
    db = new_log()

    async def go():
        async with runtime(db, wf.noting) as (store, rt):
            run_id = await rt.start("noting")
            await rt.settle()
            raised = pending(rt, run_id)[0]
            await rt.resolve(run_id, raised.interrupt_id, "answer", "yes", payload_hash=raised.payload_hash)
            await rt.settle()
            return run_id

    run_id = run(go())
    out = vigil("events", run_id, "--type", "Note", "--json", db=db)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["type"], r["name"]) for r in rows] == [("Note", "order.checked"), ("Note", "order.shipped")]

    out = vigil("events", run_id, "--type", "Note,RunCompleted", db=db)
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 0 and [line.split()[2] for line in lines] == ["Note", "Note", "RunCompleted"]
    assert "order.checked" in lines[0] and '"order":"A-1"' in lines[0]

    # Repeated and comma-separated forms combine.
    out = vigil("events", run_id, "--type", "Note", "--type", "RunStarted,RunCompleted", db=db)
    assert [line.split()[2] for line in out.stdout.decode().splitlines()] == [
        "RunStarted", "Note", "Note", "RunCompleted",
    ]


def test_cli_events_unknown_type_is_one_line_exit_2(new_log):
    db = new_log()

    async def go():
        async with runtime(db, wf.retrying) as (store, rt):
            run_id = await rt.start("retrying")
            await rt.settle()
            return run_id

    run_id = run(go())
    for value in ("Nope", "Note,Nope", "Note,"):
        out = vigil("events", run_id, "--type", value, db=db)
        err = out.stderr.decode()
        assert out.returncode == 2, (value, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "is not an event type" in err
