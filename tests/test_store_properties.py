"""Properties of the log under concurrent writers, failures and snapshots (hypothesis)."""

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.codec import encode
from kernel.errors import ConcurrencyError, EncodeFailed, StoreError
from kernel.events import ActionSucceeded, Patch, RunStarted, StepCompleted
from kernel.state import apply
from kernel.store import Store

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def db(both_backends):
    return both_backends  # every property holds on SQLite and on PostgreSQL


def run_async(new_log, coro_fn):
    return asyncio.run(coro_fn(new_log()))  # a fresh log per example


async def _writer(store, run_id, writer, batches, rng):
    """Appends its batches to a contended run, retrying on ConcurrencyError."""
    for b, size in enumerate(batches):
        events = [ActionSucceeded(action_id=f"{writer}:{b}:{i}", output=i) for i in range(size)]
        while True:
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            try:
                await store.append(run_id, events, expected_seq=await store.last_seq(run_id))
                break
            except ConcurrencyError:
                continue


@SETTINGS
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 3), st.lists(st.integers(1, 6), min_size=1, max_size=5)),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(0, 2**32),
)
def test_concurrent_writers_keep_every_run_gap_free_and_batches_whole(new_log, plan, seed):
    async def body(path):
        rng = random.Random(seed)
        async with await Store.open(path, synchronous="NORMAL") as store:
            await asyncio.gather(
                *(_writer(store, f"run{r}", w, batches, rng) for w, (r, batches) in enumerate(plan))
            )
            for r in {r for r, _ in plan}:
                records = [rec async for rec in store.iter_events(f"run{r}", page=7)]
                assert [rec.seq for rec in records] == list(range(1, len(records) + 1))
                expected = sum(sum(b) for rr, b in plan if rr == r)
                assert len(records) == expected
                assert (await store.run(f"run{r}")).last_seq == expected
                # every batch is contiguous and in order: no interleaving inside a batch
                ids = [rec.event.action_id.rsplit(":", 1) for rec in records]
                i = 0
                while i < len(ids):
                    key = ids[i][0]
                    size = next(b for w, (rr, bs) in enumerate(plan) for bi, b in enumerate(bs)
                                if f"{w}:{bi}" == key)
                    assert [x for x in ids[i : i + size]] == [[key, str(k)] for k in range(size)]
                    i += size

    run_async(new_log, body)


@SETTINGS
@given(stale=st.integers(-3, 3).filter(lambda d: d != 0), n=st.integers(1, 5))
def test_stale_expected_seq_raises_and_writes_nothing(new_log, stale, n):
    async def body(path):
        async with await Store.open(path, synchronous="NORMAL") as store:
            seq = await store.append("r", [RunStarted(graph="g")] * 4, expected_seq=0)
            with pytest.raises(ConcurrencyError) as info:
                await store.append("r", [ActionSucceeded(action_id="x")] * n, expected_seq=max(0, seq + stale))
            assert info.value.actual == 4
            assert await store.last_seq("r") == 4
            assert len(await store.events("r")) == 4

    run_async(new_log, body)


def test_unencodable_event_fails_before_anything_is_written(db):
    async def body():
        async with await Store.open(db) as store:
            events = [ActionSucceeded(action_id="a"), ActionSucceeded(action_id="b", output=object()),
                      ActionSucceeded(action_id="c")]
            with pytest.raises(EncodeFailed):
                await store.append("r", events, expected_seq=0)
            with pytest.raises(EncodeFailed):
                await store.append("r", [ActionSucceeded(action_id="d", output=2**70)], expected_seq=0)
            assert await store.events("r") == []

    asyncio.run(body())


def test_batch_failing_mid_transaction_leaves_nothing_and_spares_its_group(db):
    async def body():
        async with await Store.open(db) as store:
            good = [ActionSucceeded(action_id=str(i)) for i in range(3)]
            rows = []
            for seq, ev in enumerate(good, 1):
                b, c = encode(ev)
                rows.append(("bad", seq, 1, "ActionSucceeded", None, b, c))
            rows.insert(2, rows[1])  # a duplicate seq: UNIQUE fails on the third insert
            results = await asyncio.gather(
                store.append("ok1", good, expected_seq=0),
                store.append_rows("bad", rows, [*good[:2], good[1], good[2]], expected_seq=0),
                store.append("ok2", good, expected_seq=0),
                return_exceptions=True,
            )
            assert results[0] == 3 and results[2] == 3
            assert isinstance(results[1], StoreError)
            assert await store.events("bad") == []
            assert await store.last_seq("bad") == 0
            assert (await store.count_runs()) == 2

    asyncio.run(body())


INT64 = st.integers(-(2**63), 2**63 - 1)
_key_ops = {
    "s": st.builds(lambda v: ("set", v), INT64 | st.text(max_size=5) | st.none()),
    "l": st.builds(lambda v: ("append", v), INT64)
    | st.builds(lambda v: ("extend", v), st.lists(INT64, max_size=3)),
    "d": st.builds(lambda v: ("merge", v), st.dictionaries(st.sampled_from("xyz"), INT64, max_size=2)),
}
patch = st.sampled_from(["s1", "s2", "l1", "l2", "d1"]).flatmap(
    lambda key: (_key_ops[key[0]] | st.just(("delete", None))).map(lambda ov: Patch(ov[0], key, ov[1]))
)


@SETTINGS
@given(
    steps=st.lists(st.lists(patch, max_size=3).map(tuple), min_size=1, max_size=60),
    every=st.integers(1, 9),
    probes=st.lists(st.integers(0, 200), min_size=1, max_size=8),
)
def test_fold_of_snapshot_plus_tail_equals_fold_of_all(new_log, steps, every, probes):
    async def body(path):
        async with await Store.open(path, synchronous="NORMAL", snapshot_every=every) as store:
            state: dict = {}
            expected_at = {1: {}}
            seq = await store.append("r", [RunStarted(graph="g")], expected_seq=0)
            for i, update in enumerate(steps):
                apply(state, update)
                seq = await store.append(
                    "r",
                    [ActionSucceeded(action_id=str(i)), StepCompleted(step_id=str(i), node="n", update=update)],
                    expected_seq=seq,
                )
                expected_at[seq - 1] = expected_at[seq - 2]
                expected_at[seq] = __import__("copy").deepcopy(state)
            await store.flush_snapshots()
            assert sorted(await store.snapshot_rows("r")) == list(range(every, seq + 1, every))
            for probe in probes:
                at = 1 + probe % seq
                view = await store.state_at("r", at)
                full = await store.replay("r", at)
                assert view.state == full.state == expected_at[at]
                assert view.snapshot_seq == at // every * every

    run_async(new_log, body)


def test_run_search_is_literal_and_ignores_case_on_both_backends(new_log):
    """`_` and `%` in a search are characters, not wildcards (SQLite's search used to take them as
    wildcards while PostgreSQL's did not: the same search found different runs)."""

    async def body(path):
        async with await Store.open(path) as store:
            for run_id, labels in [("job_a_b", {}), ("job_axb", {}), ("disk-50%", {"owner": "Ops"}),
                                   ("disk-500", {})]:
                await store.append(run_id, [RunStarted(graph="g", labels=labels)], expected_seq=0)
            found = lambda runs: sorted(r.run_id for r in runs)  # noqa: E731
            assert found(await store.runs(search="a_b")) == ["job_a_b"]
            assert found(await store.runs(search="50%")) == ["disk-50%"]
            assert found(await store.runs(search="JOB_A_B")) == ["job_a_b"]
            assert found(await store.runs(search="ops")) == ["disk-50%"]
            assert await store.count_runs(search="_") == 2  # a wildcard would count all four

    run_async(new_log, body)
