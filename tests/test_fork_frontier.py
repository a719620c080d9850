"""A fork goes on from exactly where its parent was: joins half-met, branches pending, effects of
a half-finished step recorded. Property: fork a finished run at every seq, drive the fork with
the same answers, and it ends in the same state."""

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.events import ActionSucceeded, StepCompleted
from kernel.graph import END, START, Graph
from kernel.tools import tool
from runtime_helpers import events_of, pending, run, runtime


async def _finish(store, rt, run_id: str, answer) -> None:
    """Drive a run to its end, answering every question with answer(interrupt)."""
    await rt.settle()
    while run_id in rt.drivers and (waiting := pending(rt, run_id)):
        for q in waiting:
            decision = "approve" if q.kind == "approval" else "answer"
            await rt.resolve(run_id, q.interrupt_id, decision, answer(q), payload_hash=q.payload_hash)
        await rt.settle()


def _seq_of(records, node: str) -> int:
    return next(r.seq for r in records if isinstance(r.event, StepCompleted) and r.event.node == node)


def join_graph() -> Graph:
    g = Graph("join", reducers={"seen": "append"})

    async def a(state, ctx):
        return {"seen": "a"}

    async def b(state, ctx):
        await asyncio.sleep(0.05)  # completes after a
        return {"seen": "b"}

    async def c(state, ctx):
        return {"joined": sorted(state["seen"])}

    g.add_node("a", a).add_node("b", b).add_node("c", c)
    g.add_edge(START, "a").add_edge(START, "b")
    g.add_edge(["a", "b"], "c")
    g.add_edge("c", END)
    return g


def test_a_fork_between_branches_that_feed_a_join_runs_the_join(db):
    async def go():
        async with runtime(db, join_graph()) as (store, rt):
            parent = await rt.start("join")
            await rt.settle()
            records = await store.events(parent)
            fork = await rt.fork(parent, _seq_of(records, "a"))  # b not yet done
            await rt.adopt(fork)
            await rt.settle()
            return await store.run(fork), (await store.state_at(fork)).state, (await store.state_at(parent)).state

    info, state, parent_state = run(go())
    assert info.status == "completed"
    assert state == parent_state == {"seen": ["a", "b"], "joined": ["a", "b"]}


def test_a_node_that_followed_its_sibling_still_follows_it_in_the_fork(db):
    g = Graph("order")

    async def a(state, ctx):
        return {"a": 1}

    async def b(state, ctx):
        await asyncio.sleep(0.05)
        return {"b": 2}

    async def after_a(state, ctx):  # runs in the superstep after a and b
        return {"saw_b": state.get("b")}

    g.add_node("a", a).add_node("b", b).add_node("after_a", after_a)
    g.add_edge(START, "a").add_edge(START, "b")
    g.add_edge("a", "after_a").add_edge("after_a", END).add_edge("b", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            parent = await rt.start("order")
            await rt.settle()
            records = await store.events(parent)
            fork = await rt.fork(parent, _seq_of(records, "a"))
            await rt.adopt(fork)
            await rt.settle()
            return (await store.state_at(fork)).state, (await store.state_at(parent)).state

    state, parent_state = run(go())
    assert parent_state["saw_b"] == 2
    assert state == parent_state, "after_a ran beside b and saw the state before b"


def test_a_fork_inside_a_step_replays_its_completed_effects(db):
    calls: list = []

    @tool()  # not idempotent
    async def pay(amount: int) -> dict:
        calls.append(amount)
        return {"paid": amount}

    async def work(state, ctx):
        first = await ctx.tool("pay", amount=1)
        second = await ctx.tool("pay", amount=2)
        return {"receipts": [first, second]}

    g = Graph("twopay", tools=[pay])
    g.add_node("work", work)
    g.add_edge(START, "work").add_edge("work", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            parent = await rt.start("twopay")
            await rt.settle()
            events = await store.events(parent)
            first_paid = next(r.seq for r in events if isinstance(r.event, ActionSucceeded))
            fork = await rt.fork(parent, first_paid)
            await rt.adopt(fork)
            await rt.settle()
            return await store.run(fork), (await store.state_at(fork)).state

    info, state = run(go())
    assert info.status == "completed"
    assert calls == [1, 2, 2], "the fork paid 1 again"
    assert state["receipts"] == [{"paid": 1}, {"paid": 2}]


# the property ----------------------------------------------------------------------------


def random_graph(spec: list[tuple[int, bool, bool]], join: bool) -> Graph:
    """A chain of layers; layer i has spec[i][0] parallel nodes (1-3); a layer of several is
    joined into the next when `join`, else each branch goes on alone (an implicit barrier).
    A node may call a tool and may ask a question."""

    @tool(idempotent=True)
    async def mix(x: int) -> int:
        await asyncio.sleep(0)
        return x * 7 % 11

    g = Graph("prop", reducers={"trail": "append"}, tools=[mix])
    layers: list[list[str]] = []
    for i, (width, uses_tool, asks) in enumerate(spec):
        names = [f"n{i}_{k}" for k in range(width)]
        layers.append(names)
        for k, name in enumerate(names):
            async def fn(state, ctx, name=name, k=k, uses_tool=uses_tool, asks=asks):
                value = len(state.get("trail", [])) + k
                if uses_tool:
                    value = await ctx.tool("mix", x=value)
                if asks and k == 0:
                    value = f"{value}:{await ctx.interrupt(f'{name}?', {'v': value})}"
                return {"trail": f"{name}={value}", name: value}

            g.add_node(name, fn)
    for name in layers[0]:
        g.add_edge(START, name)
    for here, there in zip(layers, layers[1:]):
        for target in there:
            if join and len(here) > 1:
                g.add_edge(list(here), target)
            else:
                for source in here:
                    g.add_edge(source, target)
    for name in layers[-1]:
        g.add_edge(name, END)
    return g


def _answer(q) -> str:
    return f"ans-{q.interrupt_id}"


def _canon(state: dict) -> dict:
    # parallel nodes' appends land in completion order: compare the trail as a multiset
    return {**state, "trail": sorted(state.get("trail", []))}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=st.lists(st.tuples(st.integers(1, 3), st.booleans(), st.booleans()), min_size=1, max_size=4),
    join=st.booleans(),
)
def test_fork_at_every_seq_reaches_the_same_state(tmp_path_factory, spec, join):
    db = tmp_path_factory.mktemp("prop") / "vigil.db"
    g = random_graph(spec, join)

    async def go():
        async with runtime(db, g) as (store, rt):
            parent = await rt.start("prop")
            await _finish(store, rt, parent, _answer)
            info = await store.run(parent)
            assert info.status == "completed", info.error
            final = (await store.state_at(parent)).state
            for seq in range(1, info.last_seq + 1):
                fork = await rt.fork(parent, seq)
                await rt.adopt(fork)
                await _finish(store, rt, fork, _answer)
                forked = await store.run(fork)
                assert forked.status == "completed", (seq, forked.status, forked.error)
                got = (await store.state_at(fork)).state
                assert _canon(got) == _canon(final), f"fork at seq {seq}"

    run(go())
