"""A driver waits for its appends through `shielded`: a future of its own, set by the writer in
the same turn as the append's. Being cancelled must never cancel the append (the driver's view
already holds it), and no waiter may be left hanging, whatever happens to the append."""

import asyncio

import pytest

from kernel.errors import StoreClosed
from kernel.log.groupcommit import GroupWriter, shielded


def _writer(gate: asyncio.Event | None = None, fail: BaseException | None = None):
    committed: list[str] = []

    async def commit(group):
        if gate is not None:
            await gate.wait()
        if fail is not None:
            raise fail
        committed.extend(a.run_id for a in group)
        return [a.expected_seq + len(a.rows) for a in group], []

    return GroupWriter(commit, lambda _: None, refused=(), conflict=()), committed


def test_a_cancelled_waiter_leaves_its_append_to_commit():
    async def main():
        gate = asyncio.Event()
        writer, committed = _writer(gate)
        future = writer.submit("r", 0, [("r", 1)], ["e"])
        waiter = asyncio.ensure_future(shielded(future))
        other = asyncio.ensure_future(shielded(future))  # two wait on one append (start and its driver)
        await asyncio.sleep(0.01)
        waiter.cancel()
        gate.set()
        assert await other == 1
        assert await future == 1 and committed == ["r"]
        assert waiter.cancelled()
        await writer.close()

    asyncio.run(main())


def test_an_append_cancelled_before_its_turn_cancels_its_waiters():
    async def main():
        gate = asyncio.Event()
        writer, committed = _writer(gate)
        first = writer.submit("a", 0, [("a", 1)], ["e"])  # taken into the gated commit
        await asyncio.sleep(0.01)
        second = writer.submit("b", 0, [("b", 1)], ["e"])  # queued behind it
        waiter = asyncio.ensure_future(shielded(second))
        await asyncio.sleep(0)
        second.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, 5)
        assert await first == 1 and committed == ["a"]
        await writer.close()

    asyncio.run(main())


def test_a_failed_commit_reaches_the_waiters():
    async def main():
        writer, _ = _writer(fail=RuntimeError("the disk went away"))
        future = writer.submit("r", 0, [("r", 1)], ["e"])
        waiter = shielded(future)
        with pytest.raises(StoreClosed):
            await asyncio.wait_for(waiter, 5)
        with pytest.raises(StoreClosed):
            future.result()
        with pytest.raises(RuntimeError):
            await writer._task

    asyncio.run(main())
