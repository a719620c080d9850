"""Graph validation and superstep execution."""

import pytest

from kernel.graph import END, START, Graph, GraphError
from runtime_helpers import run, runtime, types_of


async def noop(state, ctx):
    return None


def chain(*names: str) -> Graph:
    g = Graph("g")
    for n in names:
        g.add_node(n, noop)
    g.add_edge(START, names[0])
    for a, b in zip(names, names[1:]):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Graph("g"), "has no nodes"),
        (lambda: chain("a").add_node("a", noop), "duplicate node 'a'"),
        (lambda: chain("a").add_edge("a", "ghost"), "'a' -> 'ghost' goes to a missing node"),
        (lambda: chain("a").add_node("island", noop), "node 'island' is unreachable"),
        (lambda: Graph("g").add_node("a", noop).add_edge(START, "a"), "no path reaches END"),
        (lambda: chain("a", "b").add_node("c", noop).add_node("d", noop).add_edge("a", "c")
         .add_edge("c", "d").add_edge("d", "c"), "node 'c' has no path to END"),
        (lambda: Graph("g").add_node("a", noop).add_edge("a", END), "nothing follows START"),
    ],
)
def test_validation_names_the_culprit(build, message):
    with pytest.raises(GraphError, match=message):
        build().validate()


def test_a_node_must_be_async():
    with pytest.raises(GraphError, match="must be an async function"):
        Graph("g").add_node("a", lambda state, ctx: None)


def test_a_cycle_with_a_conditional_exit_is_fine():
    g = chain("a", "b")
    g.edges["b"] = []
    g.add_branch("b", lambda s: END, ["a", END])
    g.validate()


def test_parallel_branches_and_a_join_wait_for_both(db):
    g = Graph("fan", reducers={"trail": "append"})

    def node(name):
        async def fn(state, ctx):
            return {"trail": name, f"saw_{name}": sorted(k for k in state if k.startswith("saw_"))}
        return fn

    for name in ("split", "left", "left2", "right", "join"):
        g.add_node(name, node(name))
    g.add_edge(START, "split")
    g.add_edge("split", "left")
    g.add_edge("split", "right")
    g.add_edge("left", "left2")
    g.add_edge(["left2", "right"], "join")
    g.add_edge("join", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("fan", {})
            await rt.settle()
            state = (await store.state_at(run_id)).state
            return (await store.run(run_id)).status, state, [s.event.step_id for s in await store.events(run_id, types=["StepCompleted"])]

    status, state, steps = run(go())
    assert status == "completed"
    assert state["trail"][0] == "split" and state["trail"][-1] == "join"
    assert state["trail"].count("join") == 1
    # left and right ran in the same superstep, and neither saw the other's update
    assert {s for s in steps if s.startswith("2.")} == {"2.left", "2.right"}
    assert state["saw_left"] == ["saw_split"] and state["saw_right"] == ["saw_split"]
    assert "3.left2" in steps and "4.join" in steps


def test_loops_until_a_condition(db):
    g = Graph("loop")

    async def inc(state, ctx):
        return {"n": state.get("n", 0) + 1}

    g.add_node("inc", inc)
    g.add_edge(START, "inc")
    g.add_branch("inc", lambda s: END if s["n"] >= 5 else "inc", ["inc", END])

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("loop", {"n": 0})
            await rt.settle()
            return (await store.run(run_id)).status, (await store.state_at(run_id)).state

    status, state = run(go())
    assert status == "completed" and state == {"n": 5}


def test_the_step_limit_fails_the_run(db):
    g = Graph("forever", step_limit=7)
    g.add_node("spin", noop)
    g.add_edge(START, "spin")
    g.add_branch("spin", lambda s: "spin", ["spin", END])

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("forever")
            await rt.settle()
            return await store.run(run_id), await types_of(store, run_id)

    info, types = run(go())
    assert info.status == "failed" and info.error == "step limit 7 reached"
    assert types.count("StepCompleted") == 7


def test_a_failing_node_retries_on_a_durable_timer_then_fails_the_run(db):
    from kernel.graph import RetryPolicy

    g = Graph("flaky")
    tries = []

    async def boom(state, ctx):
        tries.append(ctx.attempt)
        raise RuntimeError("no luck")

    g.add_node("boom", boom, retry=RetryPolicy(attempts=3, backoff="fixed", initial=0.05, jitter=False))
    g.add_edge(START, "boom")
    g.add_edge("boom", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("flaky")
            await rt.settle()
            return await store.run(run_id), await store.events(run_id, types=["StepFailed"])

    info, failed = run(go())
    assert tries == [1, 2, 3]
    assert [f.event.attempt for f in failed] == [1, 2, 3]
    assert [f.event.retry_at_ns is not None for f in failed] == [True, True, False]
    gap = failed[1].event.retry_at_ns - failed[0].ts_ns
    assert gap >= 0.04e9
    assert info.status == "failed" and "after 3 attempt(s): RuntimeError: no luck" in info.error


def test_a_node_deletes_a_key_whatever_its_reducer(db):
    from kernel.graph import DELETE
    from kernel.verify import verify_run

    g = Graph("tidy", reducers={"log": "append"})

    async def draft(state, ctx):
        return {"draft": "text", "log": "drafted", "api_key": "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"}

    async def publish(state, ctx):
        assert state["draft"] == "text"
        return {"draft": DELETE, "log": DELETE, "published": True}

    g.add_node("draft", draft)
    g.add_node("publish", publish)
    g.add_edge(START, "draft")
    g.add_edge("draft", "publish")
    g.add_edge("publish", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("tidy", {})
            await rt.settle()
            info = await store.run(run_id)
            return info, (await store.state_at(run_id)).state, (await store.replay(run_id)).state, await verify_run(store, run_id)

    info, state, replayed, verified = run(go())
    assert info.status == "completed", info.error
    assert state == replayed == {"published": True, "api_key": "[REDACTED:openai-key]"}
    assert verified.problems == [] and verified.steps_checked == 2
