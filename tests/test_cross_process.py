"""A second process tailing the log while this one writes sees committed events only, in order."""

import asyncio
import json
import subprocess
import sys

import pytest

from cli_helpers import ROOT, rest_of
from kernel.events import ActionSucceeded, RunStarted
from kernel.store import Store

@pytest.fixture
def db(both_backends):
    return both_backends  # SQLite and PostgreSQL alike


async def _all_rows(db) -> list[tuple]:
    rows, pos = [], 0
    async with await Store.open(db, readonly=True) as store:
        while batch := await store.read_after(pos, 500):
            rows.extend((r.pos, r.run_id, r.seq) for r in batch)
            pos = batch[-1].pos
    return rows


TAIL = """
import asyncio, json, sys
from kernel.store import Store

async def main(path, want):
    async with await Store.open(path, readonly=True) as store:
        print("ready", flush=True)
        seen = 0
        async for batch in store.tail(0):
            for r in batch:
                print(json.dumps([r.pos, r.run_id, r.seq, r.event.action_id if r.type == "ActionSucceeded" else r.type]), flush=True)
            seen += len(batch)
            if seen >= want:
                return

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_second_process_tails_in_commit_order(db):
    runs, per_run = 8, 60

    async def write():
        async with await Store.open(db) as store:
            for r in range(runs):
                await store.append(f"r{r}", [RunStarted(graph="g")], expected_seq=0)
            reader = subprocess.Popen(
                [sys.executable, "-c", TAIL, str(db), str(runs * (per_run + 1))],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            assert reader.stdout.readline().strip() == "ready"

            async def one_run(r):
                seq = 1
                for i in range(per_run):
                    seq = await store.append(f"r{r}", [ActionSucceeded(action_id=f"{r}.{i}")], expected_seq=seq)
                    if i % 7 == 0:
                        await asyncio.sleep(0.002)

            await asyncio.gather(*(one_run(r) for r in range(runs)))
            out, err = await asyncio.to_thread(rest_of, reader, 60)
            assert reader.returncode == 0, err
            return [json.loads(line) for line in out.splitlines()]

    seen = asyncio.run(write())
    rows = asyncio.run(_all_rows(db))
    assert [tuple(s[:3]) for s in seen] == rows  # every committed event, once, in pos order
    for r in range(runs):
        mine = [s for s in seen if s[1] == f"r{r}"]
        assert [s[2] for s in mine] == list(range(1, per_run + 2))
        assert [s[3] for s in mine[1:]] == [f"{r}.{i}" for i in range(per_run)]


APPEND_ONE = """
import asyncio, sys
from kernel.events import ActionSucceeded
from kernel.store import Store

async def main(path):
    async with await Store.open(path) as store:
        last = await store.last_seq("shared")
        print(await store.append("shared", [ActionSucceeded(action_id="other")], expected_seq=last))

asyncio.run(main(sys.argv[1]))
"""


def test_a_run_appended_by_another_process_is_never_overwritten_or_gapped(db):
    """This process's writer remembers the run's last seq; another process moves it on."""
    from kernel.errors import ConcurrencyError

    async def go():
        async with await Store.open(db) as store:
            seq = await store.append("shared", [RunStarted(graph="g")], expected_seq=0)
            seq = await store.append("shared", [ActionSucceeded(action_id="mine")], expected_seq=seq)
            out = subprocess.run([sys.executable, "-c", APPEND_ONE, str(db)], cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            assert out.stdout.strip() == "3"
            # in the same group as an innocent append to another run
            results = await asyncio.gather(
                store.append("shared", [ActionSucceeded(action_id="stale")], expected_seq=seq),
                store.append("other", [RunStarted(graph="g")], expected_seq=0),
                return_exceptions=True,
            )
            assert isinstance(results[0], ConcurrencyError) and results[0].actual == 3
            assert results[1] == 1
            # with the fresh seq it goes through
            assert await store.append("shared", [ActionSucceeded(action_id="fresh")], expected_seq=3) == 4
            ids = [r.event.action_id for r in await store.events("shared", 2)]
            assert ids == ["mine", "other", "fresh"]

    asyncio.run(go())


WRITER = """
import asyncio, sys
from kernel.events import ActionSucceeded, RunStarted
from kernel.store import Store

async def main(path, name, n):
    async with await Store.open(path) as store:
        seqs = {}
        async def one(r):
            run = f"{name}-{r}"
            seq = await store.append(run, [RunStarted(graph="g")], expected_seq=0)
            for i in range(n):
                seq = await store.append(run, [ActionSucceeded(action_id=str(i))] * (1 + i % 3), expected_seq=seq)
        await asyncio.gather(*(one(r) for r in range(4)))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_a_tail_never_skips_a_commit_from_several_writer_processes_at_once(db):
    """Transactions in different processes take their positions and commit in any order; a tail
    that has read up to a position must never later meet a smaller one (it would skip it)."""
    writers, per_run = 4, 40
    total = writers * 4 * (1 + sum(1 + i % 3 for i in range(per_run)))

    async def go():
        async with await Store.open(db) as store:  # creates the schema before anyone races
            await store.head()
        reader = subprocess.Popen([sys.executable, "-c", TAIL, str(db), str(total)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert reader.stdout.readline().strip() == "ready"
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"w{w}", str(per_run)], cwd=ROOT,
                                  stderr=subprocess.PIPE, text=True) for w in range(writers)]
        for p in procs:
            _, err = await asyncio.to_thread(p.communicate, timeout=120)
            assert p.returncode == 0, err
        out, err = await asyncio.to_thread(rest_of, reader, 60)
        assert reader.returncode == 0, err
        return [json.loads(line) for line in out.splitlines()]

    seen = asyncio.run(go())
    positions = [s[0] for s in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions) == total
    assert [tuple(s[:3]) for s in seen] == asyncio.run(_all_rows(db))


def test_what_a_readline_buffered_is_not_lost_by_the_tests_own_helper():
    """The harness itself: a process that prints its first rows before the test reads its
    "ready" line must not lose them (communicate(timeout=...) after readline() does)."""
    import time

    proc = subprocess.Popen([sys.executable, "-c", "print('ready'); print('row 1'); print('row 2')"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # everything is in the pipe before the first readline
    assert proc.stdout.readline().strip() == "ready"
    out, _ = rest_of(proc, 30)
    assert out.splitlines() == ["row 1", "row 2"]
